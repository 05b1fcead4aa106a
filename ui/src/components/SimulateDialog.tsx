// "Simulate" in the builder: a small form (population, days, seed, an optional scenario as
// JSON), the call to POST /v1/journeys/{id}/simulate with a visible "simulating…" state, then
// the prediction: entries, messages and conversions, the messages-per-day chart (uPlot), the
// busiest hour per channel, why messages were suppressed, and the assumptions used (those that
// are only defaults marked). The builder puts the predicted entries on the canvas nodes.
import { useEffect, useRef, useState } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { api, describe, ok } from '../api/client';
import { ErrorBanner } from './common';
import { money } from '../lib/report';
import {
  activeChannels,
  CHANNEL_COLORS,
  DEFAULT_FORM,
  defaultedCount,
  hourLabel,
  isDefault,
  LIMITS,
  messagesPerDay,
  peakHours,
  percent,
  simulateBody,
  suppressedReasons,
  type Prediction,
  type SimulateForm,
} from '../lib/simulate';

interface Audiences {
  segments: Array<{ id: string; name: string; members: number }>;
  lists: Array<{ name: string; members: number }>;
}

export function SimulateDialog(props: {
  journeyId: string;
  /** Saves the draft first when it has unsaved changes; false when it could not. */
  beforeRun: () => Promise<boolean>;
  result: Prediction | null;
  onResult: (p: Prediction) => void;
  onClose: () => void;
}) {
  const [form, setForm] = useState<SimulateForm>(DEFAULT_FORM);
  const [audiences, setAudiences] = useState<Audiences | null>(null);
  const [running, setRunning] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const result = props.result;

  useEffect(() => {
    if (form.population === 'synthetic' || audiences) return;
    Promise.all([ok<{ segments: Audiences['segments'] }>(api.GET('/v1/segments')), ok<{ lists: Audiences['lists'] }>(api.GET('/v1/lists'))])
      .then(([s, l]) => setAudiences({ segments: s.segments, lists: l.lists }))
      .catch((e) => setError(describe(e)));
  }, [form.population, audiences]);

  const set = (patch: Partial<SimulateForm>) => setForm((f) => ({ ...f, ...patch }));
  const run = async () => {
    setError(null);
    const asked = simulateBody(form);
    if ('error' in asked) {
      setError(asked.error);
      return;
    }
    setRunning(true);
    try {
      if (!(await props.beforeRun())) return;
      const p = await ok<Prediction>(api.POST('/v1/journeys/{id}/simulate', { params: { path: { id: props.journeyId } }, body: asked.body }));
      props.onResult(p);
    } catch (e) {
      setError(describe(e));
    } finally {
      setRunning(false);
    }
  };

  return (
    <div className="modal-backdrop" onClick={() => !running && props.onClose()}>
      <div className="modal wide" role="dialog" aria-label="Simulate" onClick={(e) => e.stopPropagation()}>
        <h2>Simulate the draft</h2>
        <p className="muted small">
          Runs the draft on a private simulated clock with a scratch copy: nothing is sent and nothing here changes. The same settings and seed give the same prediction.
        </p>
        <div className="sim-form">
          <div className="field">
            <label htmlFor="sim-population">Population</label>
            <select id="sim-population" value={form.population} onChange={(e) => set({ population: e.target.value as SimulateForm['population'] })}>
              <option value="synthetic">Synthetic contacts</option>
              <option value="segment">A segment's members</option>
              <option value="list">A list's members</option>
            </select>
          </div>
          {form.population === 'synthetic' && (
            <div className="field">
              <label htmlFor="sim-contacts">Contacts</label>
              <input id="sim-contacts" type="number" min={1} max={LIMITS.contacts} value={form.contacts} onChange={(e) => set({ contacts: e.target.value })} />
            </div>
          )}
          {form.population === 'segment' && (
            <div className="field">
              <label htmlFor="sim-segment">Segment</label>
              <select id="sim-segment" value={form.segment} onChange={(e) => set({ segment: e.target.value })}>
                <option value="">Choose…</option>
                {audiences?.segments.map((s) => (
                  <option key={s.id} value={s.id}>
                    {s.name} ({s.members})
                  </option>
                ))}
              </select>
            </div>
          )}
          {form.population === 'list' && (
            <div className="field">
              <label htmlFor="sim-list">List</label>
              <select id="sim-list" value={form.list} onChange={(e) => set({ list: e.target.value })}>
                <option value="">Choose…</option>
                {audiences?.lists.map((l) => (
                  <option key={l.name} value={l.name}>
                    {l.name} ({l.members})
                  </option>
                ))}
              </select>
            </div>
          )}
          <div className="field">
            <label htmlFor="sim-days">Days</label>
            <input id="sim-days" type="number" min={1} max={LIMITS.days} value={form.days} onChange={(e) => set({ days: e.target.value })} />
          </div>
          <div className="field">
            <label htmlFor="sim-seed">Seed</label>
            <input id="sim-seed" type="number" min={0} value={form.seed} onChange={(e) => set({ seed: e.target.value })} />
          </div>
        </div>
        <div className="field">
          <label htmlFor="sim-scenario">Scenario (JSON, optional)</label>
          <textarea
            id="sim-scenario"
            rows={4}
            placeholder='{"behaviour": [{"event": "Order Completed", "after": "entry", "probability": "20%", "delay": {"median": "1d"}}]}'
            value={form.scenario}
            onChange={(e) => set({ scenario: e.target.value })}
          />
          <div className="muted small">
            As a scenario file of <code>waymark simulate</code> (population, arrivals, behaviour), written as JSON: the web app reads no YAML. What it leaves out is assumed and listed below.
          </div>
        </div>
        <ErrorBanner error={error} onClose={() => setError(null)} />
        <div className="actions">
          <button onClick={props.onClose} disabled={running}>
            {result ? 'Close (keep the numbers on the canvas)' : 'Cancel'}
          </button>
          <button className="primary" onClick={() => void run()} disabled={running} data-testid="run-simulation">
            {running ? 'Simulating…' : result ? 'Simulate again' : 'Simulate'}
          </button>
        </div>
        {running && (
          <p className="muted" role="status" data-testid="simulating">
            Simulating… a month of 1,000 contacts takes about ten seconds; more contacts, longer.
          </p>
        )}
        {result && !running && <PredictionView p={result} />}
      </div>
    </div>
  );
}

function PredictionView({ p }: { p: Prediction }) {
  const peaks = peakHours(p);
  const reasons = suppressedReasons(p);
  const defaulted = defaultedCount(p);
  const totals = p.messages.totals;
  return (
    <div className="sim-result" data-testid="simulation-result">
      <p>
        {p.population.contacts} contacts ({p.population.source}) over {p.period.days} days from {hourLabel(p.period.start)}, seed {p.seed}.
      </p>
      <div className="sim-figures">
        <Figure name="entered" value={p.entered} />
        <Figure name="emails sent" value={totals.email.sent} />
        <Figure name="SMS sent" value={totals.sms.sent} />
        <Figure name="webhooks called" value={totals.webhook.sent} />
        <Figure name="suppressed" value={totals.email.suppressed + totals.sms.suppressed + totals.webhook.suppressed} />
        <Figure name="conversions" value={p.conversions.count} />
        <Figure name="conversion rate" value={percent(p.conversions.rate)} />
        <Figure name="revenue" value={money(p.conversions.revenue)} />
      </div>
      <h3>Messages sent per day</h3>
      <MessagesChart p={p} />
      <h3>Busiest hour</h3>
      <table className="table compact" aria-label="Busiest hour per channel">
        <thead>
          <tr>
            <th>Channel</th>
            <th>Hour</th>
            <th className="num">Messages</th>
          </tr>
        </thead>
        <tbody>
          {peaks.map((r) => (
            <tr key={r.channel} data-testid={`peak-${r.channel}`}>
              <td>{r.channel}</td>
              <td>{hourLabel(r.hour)}</td>
              <td className="num">{r.messages}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h3>Not sent, and why</h3>
      {reasons.length === 0 ? (
        <p className="muted">No message was suppressed.</p>
      ) : (
        <table className="table compact" aria-label="Suppressed messages by reason">
          <tbody>
            {reasons.map((r) => (
              <tr key={r.reason} data-testid="suppressed-reason">
                <td>{r.reason}</td>
                <td className="num">{r.count}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h3>Assumptions</h3>
      {defaulted > 0 && (
        <p className="warn" data-testid="defaults-warning">
          {defaulted} of {p.assumptions.length} rule{p.assumptions.length > 1 ? 's are' : ' is'} only a default, neither given in the scenario nor measured on this journey: give them in the scenario
          to trust the numbers.
        </p>
      )}
      <table className="table compact" aria-label="Assumptions">
        <thead>
          <tr>
            <th>Event</th>
            <th>After</th>
            <th className="num">Probability</th>
            <th>Delay</th>
            <th>Source</th>
          </tr>
        </thead>
        <tbody>
          {p.assumptions.map((a, i) => (
            <tr key={i} className={isDefault(a) ? 'assumed' : undefined} data-testid="assumption" data-source={a.source}>
              <td>{a.event}</td>
              <td>{a.after}</td>
              <td className="num">{percent(a.probability)}</td>
              <td>{a.delay}</td>
              <td>{isDefault(a) ? <strong>default (assumed)</strong> : a.source}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Figure({ name, value }: { name: string; value: number | string }) {
  return (
    <div className="sim-figure" data-testid={`sim-figure-${name.replace(/\s+/g, '-')}`} data-value={value}>
      <b>{value}</b>
      <span className="muted small">{name}</span>
    </div>
  );
}

function MessagesChart({ p }: { p: Prediction }) {
  const box = useRef<HTMLDivElement>(null);
  const data = messagesPerDay(p);
  const channels = activeChannels(p);
  const key = JSON.stringify(data);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const width = () => Math.max(320, el.clientWidth);
    const plot = new uPlot(
      {
        width: width(),
        height: 220,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'UTC'),
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
        series: [{}, ...channels.map((c) => ({ label: c, stroke: CHANNEL_COLORS[c], width: 2, points: { show: data.x.length <= 60 } }))],
        axes: [{}, { label: 'Messages', values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? String(t) : '')) }],
      },
      [data.x, ...channels.map((c) => data.series[c])],
      el,
    );
    const resize = new ResizeObserver(() => plot.setSize({ width: width(), height: 220 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
    // `key` stands for the data.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);
  return <div ref={box} className="report-chart" data-testid="simulation-chart" data-chart={key} aria-label="Messages sent per day" />;
}
