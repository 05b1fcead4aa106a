// "Simulate" in the builder (POST /v1/journeys/{id}/simulate, docs/api.md#simulating-a-journey):
// the form turned into the request body (with its mistakes said before anything is sent), and
// the prediction turned into what the builder draws: a badge per canvas node, the columns of
// the messages-per-day chart, the busiest hours, the reasons for suppression and the
// assumptions, with those that were only defaults marked. Pure, so it is unit-tested.
import type { components } from '../api/schema';

export type SimulateRequest = components['schemas']['SimulateRequest'];
export type Prediction = components['schemas']['Prediction'];
export type Assumption = components['schemas']['Assumption'];

export const CHANNELS = ['email', 'sms', 'webhook'] as const;
export type ChannelName = (typeof CHANNELS)[number];
export const CHANNEL_COLORS: Record<ChannelName, string> = { email: '#2563eb', sms: '#16a34a', webhook: '#9333ea' };

/** The form as typed: every field a string, the population one of three kinds. */
export interface SimulateForm {
  population: 'synthetic' | 'segment' | 'list';
  contacts: string;
  segment: string;
  list: string;
  days: string;
  seed: string;
  /** The scenario as JSON text (empty: none). */
  scenario: string;
}

export const DEFAULT_FORM: SimulateForm = { population: 'synthetic', contacts: '1000', segment: '', list: '', days: '30', seed: '1', scenario: '' };

export const LIMITS = { contacts: 100_000, days: 90 } as const;

function whole(text: string, field: string, min: number, max: number): number | string {
  const t = text.trim();
  if (!/^\d+$/.test(t)) return `${field}: a whole number from ${min} to ${max}`;
  const n = Number(t);
  if (n < min || n > max) return `${field}: from ${min} to ${max}, not ${n}`;
  return n;
}

/** The request body of a form, or what is wrong with it. */
export function simulateBody(form: SimulateForm): { body: SimulateRequest } | { error: string } {
  const body: SimulateRequest = {};
  if (form.population === 'synthetic') {
    const n = whole(form.contacts, 'contacts', 1, LIMITS.contacts);
    if (typeof n === 'string') return { error: n };
    body.contacts = n;
  } else if (form.population === 'segment') {
    if (!form.segment) return { error: 'segment: choose one' };
    body.segment = form.segment;
  } else {
    if (!form.list) return { error: 'list: choose one' };
    body.list = form.list;
  }
  const days = whole(form.days, 'days', 1, LIMITS.days);
  if (typeof days === 'string') return { error: days };
  body.days = days;
  const seed = whole(form.seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
  if (typeof seed === 'string') return { error: seed };
  body.seed = seed;
  if (form.scenario.trim() !== '') {
    let scenario: unknown;
    try {
      scenario = JSON.parse(form.scenario);
    } catch (e) {
      return { error: `scenario: not valid JSON (${(e as Error).message})` };
    }
    if (!scenario || typeof scenario !== 'object' || Array.isArray(scenario)) return { error: 'scenario: a JSON object with population, arrivals or behaviour' };
    body.scenario = scenario as Record<string, unknown>;
  }
  return { body };
}

/** What a node's badge shows: its predicted entries, and for a node that sends, its sends. */
export interface SimBadge {
  entered: number;
  sent: number;
  converted: number;
  sends: boolean;
}

export function badgesByNode(p: Prediction): Record<string, SimBadge> {
  const out: Record<string, SimBadge> = {};
  for (const n of p.funnel) out[n.node] = { entered: n.entered, sent: n.sent, converted: n.converted, sends: n.sent + n.suppressed + n.failed > 0 };
  return out;
}

/** The chart's columns: the start of each day (Unix seconds) and each channel's sends. */
export interface DayColumns {
  x: number[];
  series: Record<ChannelName, number[]>;
}

export function messagesPerDay(p: Prediction): DayColumns {
  const days = p.messages.per_day;
  const series = Object.fromEntries(CHANNELS.map((c) => [c, days.map((d) => d[c].sent)])) as Record<ChannelName, number[]>;
  return { x: days.map((d) => Math.floor(Date.parse(d.day) / 1000)), series };
}

/** The channels that sent anything (the chart draws those only, else email alone). */
export function activeChannels(p: Prediction): ChannelName[] {
  const used = CHANNELS.filter((c) => p.messages.totals[c].sent + p.messages.totals[c].suppressed + p.messages.totals[c].failed > 0);
  return used.length ? used : ['email'];
}

export interface PeakRow {
  channel: ChannelName;
  messages: number;
  hour: string | null;
}

export function peakHours(p: Prediction): PeakRow[] {
  return CHANNELS.map((c) => ({ channel: c, messages: p.messages.peak_hour[c].messages, hour: p.messages.peak_hour[c].hour ?? null }));
}

/** Why messages were not sent, the most frequent reason first. */
export function suppressedReasons(p: Prediction): Array<{ reason: string; count: number }> {
  return Object.entries(p.messages.suppressed_reasons)
    .map(([reason, count]) => ({ reason, count }))
    .sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));
}

/** An assumption that was not given nor measured: only the default. */
export function isDefault(a: Assumption): boolean {
  return a.source === 'default';
}

export function defaultedCount(p: Prediction): number {
  return p.assumptions.filter(isDefault).length;
}

/** `0.25` → `25%` (up to two decimals). */
export function percent(p: number | null | undefined): string {
  if (p == null) return '–';
  return `${Math.round(p * 10_000) / 100}%`;
}

/** An hour as `Mon 2 Mar, 09:00 UTC`. */
export function hourLabel(iso: string | null): string {
  if (!iso) return '–';
  const d = new Date(iso);
  return `${d.toLocaleDateString('en-GB', { weekday: 'short', day: 'numeric', month: 'short', timeZone: 'UTC' })}, ${d.toISOString().slice(11, 16)} UTC`;
}
