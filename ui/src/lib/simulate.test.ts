import { describe, expect, it } from 'vitest';
import { activeChannels, badgesByNode, DEFAULT_FORM, defaultedCount, messagesPerDay, peakHours, percent, simulateBody, suppressedReasons, type Prediction } from './simulate';

const counts = (sent: number, suppressed = 0, failed = 0) => ({ sent, suppressed, failed });
const node = (id: string, type: string, entered: number, sent = 0, suppressed = 0, converted = 0) => ({
  node: id,
  type,
  entered,
  completed: entered,
  outputs: { next: entered },
  deferred: 0,
  exited: 0,
  converted,
  sent,
  suppressed,
  failed: 0,
  human_opened: 0,
  human_clicked: 0,
  attributed: 0,
  revenue: 0,
});

function prediction(): Prediction {
  return {
    journey: { id: 'cart', name: 'Cart', source: 'draft of cart' },
    population: { contacts: 10, source: 'synthetic' },
    period: { start: '2026-03-02T00:00:00Z', end: '2026-03-04T00:00:00Z', days: 2, resolution: '15m' },
    seed: 1,
    assumptions: [
      { event: 'Email Opened', after: 'each email', probability: 0.25, delay: '2h', source: 'default' },
      { event: 'Order Completed', after: 'entry', probability: 0.1, delay: '1d', source: 'scenario' },
    ],
    entered: 9,
    arrivals_sent: 10,
    funnel: [node('t', 'trigger', 9), node('mail', 'send_email', 8, 6, 2, 1), node('wait', 'delay', 6)],
    waiting: [],
    messages: {
      totals: { email: counts(6, 2), sms: counts(0), webhook: counts(0) },
      per_day: [
        { day: '2026-03-02T00:00:00Z', email: counts(4, 1), sms: counts(0), webhook: counts(0) },
        { day: '2026-03-03T00:00:00Z', email: counts(2, 1), sms: counts(0), webhook: counts(0) },
      ],
      peak_hour: { email: { messages: 3, hour: '2026-03-02T09:00:00Z' }, sms: { messages: 0, hour: null }, webhook: { messages: 0, hour: null } },
      capped: 0,
      suppressed_reasons: { 'no email address': 1, unsubscribed: 1, 'frequency cap reached (email=1/1d)': 0 },
    },
    conversions: { count: 1, rate: 1 / 9, revenue: 59 },
    behaviour_events: { 'Order Completed': 1 },
    elapsed_seconds: 0.4,
    chart_svg: '<svg/>',
  };
}

describe('simulateBody', () => {
  it('makes the request of the default form', () => {
    expect(simulateBody(DEFAULT_FORM)).toEqual({ body: { contacts: 1000, days: 30, seed: 1 } });
  });

  it('says what is wrong before anything is sent', () => {
    expect(simulateBody({ ...DEFAULT_FORM, contacts: '0' })).toEqual({ error: 'contacts: from 1 to 100000, not 0' });
    expect(simulateBody({ ...DEFAULT_FORM, contacts: '100001' })).toHaveProperty('error');
    expect(simulateBody({ ...DEFAULT_FORM, days: '91' })).toEqual({ error: 'days: from 1 to 90, not 91' });
    expect(simulateBody({ ...DEFAULT_FORM, days: '2.5' })).toEqual({ error: 'days: a whole number from 1 to 90' });
    expect(simulateBody({ ...DEFAULT_FORM, population: 'segment' })).toEqual({ error: 'segment: choose one' });
    expect(simulateBody({ ...DEFAULT_FORM, scenario: '{behaviour: []}' })).toHaveProperty('error', expect.stringMatching(/^scenario: not valid JSON/));
    expect(simulateBody({ ...DEFAULT_FORM, scenario: '[1]' })).toEqual({ error: 'scenario: a JSON object with population, arrivals or behaviour' });
  });

  it('sends a segment or list instead of contacts, and the scenario as an object', () => {
    expect(simulateBody({ ...DEFAULT_FORM, population: 'segment', segment: 'pros', contacts: 'ignored' })).toEqual({ body: { segment: 'pros', days: 30, seed: 1 } });
    expect(simulateBody({ ...DEFAULT_FORM, population: 'list', list: 'VIP', days: '7', seed: '42' })).toEqual({ body: { list: 'VIP', days: 7, seed: 42 } });
    const scenario = { behaviour: [{ event: 'X', after: 'entry', probability: '10%' }] };
    expect(simulateBody({ ...DEFAULT_FORM, scenario: JSON.stringify(scenario) })).toEqual({ body: { contacts: 1000, days: 30, seed: 1, scenario } });
  });
});

describe('the prediction as drawn', () => {
  it('gives each node its badge, with sends only where a node sends', () => {
    const b = badgesByNode(prediction());
    expect(b.t).toEqual({ entered: 9, sent: 0, converted: 0, sends: false });
    expect(b.mail).toEqual({ entered: 8, sent: 6, converted: 1, sends: true });
    expect(b.nope).toBeUndefined();
  });

  it('makes the chart columns per day and channel, drawing the channels that sent', () => {
    const p = prediction();
    const d = messagesPerDay(p);
    expect(d.x).toEqual([Date.parse('2026-03-02T00:00:00Z') / 1000, Date.parse('2026-03-03T00:00:00Z') / 1000]);
    expect(d.series.email).toEqual([4, 2]);
    expect(d.series.sms).toEqual([0, 0]);
    expect(activeChannels(p)).toEqual(['email']);
    p.messages.totals.sms = counts(0, 3);
    expect(activeChannels(p)).toEqual(['email', 'sms']);
  });

  it('lists peaks per channel, reasons most frequent first, and counts the defaults', () => {
    const p = prediction();
    expect(peakHours(p)).toEqual([
      { channel: 'email', messages: 3, hour: '2026-03-02T09:00:00Z' },
      { channel: 'sms', messages: 0, hour: null },
      { channel: 'webhook', messages: 0, hour: null },
    ]);
    p.messages.suppressed_reasons.unsubscribed = 5;
    expect(suppressedReasons(p).map((r) => r.reason)).toEqual(['unsubscribed', 'no email address', 'frequency cap reached (email=1/1d)']);
    expect(defaultedCount(p)).toBe(1);
    expect(percent(0.25)).toBe('25%');
    expect(percent(1 / 9)).toBe('11.11%');
    expect(percent(null)).toBe('–');
  });
});
