// What publishing a draft changes for contacts in flight, compared with the live version.
// Contacts stay on the version they entered (docs/journeys.md), so nobody is moved; the summary
// says which nodes new entries will no longer reach and how many contacts still wait at them.

import type { JourneyDoc } from './graph';

export interface NodeStat {
  node: string;
  waiting?: number;
  [key: string]: unknown;
}

export interface PublishDiff {
  firstVersion: boolean;
  added: string[];
  removed: string[];
  changed: string[];
  edgesAdded: number;
  edgesRemoved: number;
  /** Contacts waiting now at nodes the new version removes or changes. */
  waitingAtRemoved: number;
  waitingAtChanged: number;
  /** Everything else (name, entry, goal...) that differs. */
  settingsChanged: string[];
}

function byId(doc: JourneyDoc | null | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const n of doc?.nodes ?? []) {
    const { position: _p, ...rest } = n as Record<string, unknown>;
    out.set(String(rest.id), stable(rest));
  }
  return out;
}

/** JSON with sorted keys, so that key order does not count as a change. */
export function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object') {
    const keys = Object.keys(v).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${stable((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v ?? null);
}

function edgeKeys(doc: JourneyDoc | null | undefined): Set<string> {
  return new Set((doc?.edges ?? []).map((e) => `${e.from}:${e.output ?? 'next'}->${e.to}`));
}

export function publishDiff(live: JourneyDoc | null | undefined, draft: JourneyDoc, stats: NodeStat[] = []): PublishDiff {
  const before = byId(live);
  const after = byId(draft);
  const added = [...after.keys()].filter((id) => !before.has(id));
  const removed = [...before.keys()].filter((id) => !after.has(id));
  const changed = [...after.keys()].filter((id) => before.has(id) && before.get(id) !== after.get(id));
  const e1 = edgeKeys(live);
  const e2 = edgeKeys(draft);
  const waitingAt = (ids: string[]) =>
    stats.filter((s) => ids.includes(s.node)).reduce((sum, s) => sum + (Number(s.waiting) || 0), 0);
  const settingsChanged: string[] = [];
  if (live) {
    const keys = new Set([...Object.keys(live), ...Object.keys(draft)]);
    for (const k of keys) {
      if (['nodes', 'edges', 'templates'].includes(k)) continue;
      if (stable((live as Record<string, unknown>)[k]) !== stable((draft as Record<string, unknown>)[k])) settingsChanged.push(k);
    }
  }
  return {
    firstVersion: !live,
    added,
    removed,
    changed,
    edgesAdded: [...e2].filter((e) => !e1.has(e)).length,
    edgesRemoved: [...e1].filter((e) => !e2.has(e)).length,
    waitingAtRemoved: waitingAt(removed),
    waitingAtChanged: waitingAt(changed),
    settingsChanged: settingsChanged.sort(),
  };
}

/** A template the draft sends whose current version is not the one the live version pinned. */
export interface TemplateUpdate {
  id: string;
  /** The version the live journey version sends; `null` when it pinned none. */
  from: number | null;
  to: number;
}

/** The templates the draft's email and SMS nodes send, each once, in node order. */
export function sentTemplates(draft: JourneyDoc): string[] {
  const out: string[] = [];
  for (const n of draft.nodes ?? []) {
    const t = (n as Record<string, unknown>).template;
    if ((n.type === 'send_email' || n.type === 'send_sms') && typeof t === 'string' && t !== '' && !out.includes(t)) out.push(t);
  }
  return out;
}

/**
 * Which templates publishing would move to a newer version: journey versions pin the template
 * versions they send (docs/journeys.md, "Templates"), so an edited template reaches new
 * entries only with a new journey version.
 */
export function templateUpdates(draft: JourneyDoc, pinned: Record<string, number>, current: Array<{ id: string; version?: number }>): TemplateUpdate[] {
  const out: TemplateUpdate[] = [];
  for (const id of sentTemplates(draft)) {
    const now = current.find((t) => t.id === id)?.version;
    if (now == null) continue;
    const was = pinned[id] ?? null;
    if (was !== now) out.push({ id, from: was, to: now });
  }
  return out;
}
