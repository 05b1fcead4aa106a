import { useState } from 'react';
import { api, describe, ok } from '../api/client';

export function SignIn({ onSignedIn, error: initial }: { onSignedIn: (csrf: string) => void; error: string | null }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(initial);
  const [busy, setBusy] = useState(false);
  return (
    <div className="signin">
      <form
        className="card"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            const r = await ok<{ csrf_token: string }>(api.POST('/v1/session', { body: { token } }));
            onSignedIn(r.csrf_token);
          } catch (err) {
            setError(describe(err));
          } finally {
            setBusy(false);
          }
        }}
      >
        <h1>Waymark</h1>
        <p className="muted">
          Sign in with the admin token (<code>WAYMARK_ADMIN_TOKEN</code>, or <code>admin_token</code> in the data directory's <code>secrets.json</code>).
        </p>
        <label htmlFor="token">Admin token</label>
        <input id="token" type="password" autoComplete="current-password" value={token} onChange={(e) => setToken(e.target.value)} autoFocus />
        {error && (
          <div className="error" role="alert">
            {error}
          </div>
        )}
        <button type="submit" className="primary" disabled={busy || token.trim() === ''}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </div>
  );
}
