import { lazy, Suspense, useCallback, useEffect, useState } from 'react';
import { api, describe, ok, onUnauthorized, setCsrfToken } from './api/client';
import { Loading } from './components/common';
import { Link, navigate, usePath } from './router';
import { SignIn } from './pages/SignIn';
import { JourneyList } from './pages/JourneyList';
import { Builder } from './pages/Builder';
import { Templates } from './pages/Templates';
import { Contacts } from './pages/Contacts';
import { Messages } from './pages/Messages';
import { ContactPage } from './pages/ContactPage';
import { Segments } from './pages/Segments';
import { Lists } from './pages/Lists';
import { Broadcasts } from './pages/Broadcasts';
import { People } from './pages/People';

// The report tab and its chart library (uPlot) load when a report is first opened, not with
// the app.
const Report = lazy(() => import('./pages/Report').then((m) => ({ default: m.Report })));

type Auth = 'checking' | 'signed-out' | 'signed-in';

export function App() {
  const path = usePath();
  const [auth, setAuth] = useState<Auth>('checking');
  const [error, setError] = useState<string | null>(null);

  const check = useCallback(async () => {
    try {
      const s = await ok<{ signed_in: boolean; csrf_token: string | null }>(api.GET('/v1/session'));
      setCsrfToken(s.csrf_token);
      setAuth(s.signed_in ? 'signed-in' : 'signed-out');
    } catch (e) {
      setCsrfToken(null);
      setAuth('signed-out');
      setError(describe(e));
    }
  }, []);

  useEffect(() => {
    onUnauthorized(() => {
      setCsrfToken(null);
      setAuth('signed-out');
    });
    void check();
  }, [check]);

  const signOut = async () => {
    try {
      await ok(api.DELETE('/v1/session'));
    } catch {
      // Signed out either way.
    }
    setCsrfToken(null);
    setAuth('signed-out');
    navigate('/', true);
  };

  if (auth === 'checking') return <div className="center muted">Loading…</div>;
  if (auth === 'signed-out')
    return (
      <SignIn
        error={error}
        onSignedIn={(csrf) => {
          setCsrfToken(csrf);
          setError(null);
          setAuth('signed-in');
        }}
      />
    );

  const section = path.split('/')[1] || 'journeys';
  return (
    <div className="app">
      <header className="topbar">
        <Link to="/journeys" className="brand">
          Waymark
        </Link>
        <nav>
          <Link to="/journeys" className={section === 'journeys' ? 'active' : ''}>
            Journeys
          </Link>
          <Link to="/templates" className={section === 'templates' ? 'active' : ''}>
            Templates
          </Link>
          <Link to="/contacts" className={section === 'contacts' ? 'active' : ''}>
            Contacts
          </Link>
          <Link to="/segments" className={section === 'segments' ? 'active' : ''}>
            Segments
          </Link>
          <Link to="/lists" className={section === 'lists' ? 'active' : ''}>
            Lists
          </Link>
          <Link to="/broadcasts" className={section === 'broadcasts' ? 'active' : ''}>
            Broadcasts
          </Link>
          <Link to="/messages" className={section === 'messages' ? 'active' : ''}>
            Messages
          </Link>
        </nav>
        <button className="link" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main className="main">
        <Route path={path} />
      </main>
    </div>
  );
}

function Route({ path }: { path: string }) {
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0 || (parts[0] === 'journeys' && parts.length === 1)) return <JourneyList />;
  if (parts[0] === 'journeys' && parts.length === 2) return <Builder key={parts[1]} journeyId={parts[1]} />;
  if (parts[0] === 'journeys' && parts.length === 3 && parts[2] === 'report') return (
      <Suspense fallback={<Loading what="the report" />}>
        <Report key={parts[1]} journeyId={parts[1]} />
      </Suspense>
    );
  if (parts[0] === 'journeys' && parts.length === 3 && parts[2] === 'people') return <People key={parts[1]} journeyId={parts[1]} />;
  if (parts[0] === 'templates') return <Templates selected={parts[1]} />;
  if (parts[0] === 'contacts' && parts.length === 1) return <Contacts />;
  if (parts[0] === 'messages' && parts.length === 1) return <Messages />;
  if (parts[0] === 'segments' && parts.length <= 2) return <Segments selected={parts[1]} />;
  if (parts[0] === 'lists' && parts.length <= 2) return <Lists key={parts[1] ?? ''} selected={parts[1]} />;
  if (parts[0] === 'broadcasts' && parts.length <= 2) return <Broadcasts selected={parts[1]} />;
  if (parts[0] === 'broadcasts' && parts.length === 3 && parts[2] === 'messages') return <Broadcasts selected={parts[1]} showMessages />;
  if (parts[0] === 'contacts' && parts.length === 2) return <ContactPage key={parts[1]} contactId={parts[1]} />;
  return (
    <div className="page">
      <h1>Not found</h1>
      <p>
        There is no page at <code>{path}</code>. <Link to="/journeys">Go to the journeys</Link>.
      </p>
    </div>
  );
}
