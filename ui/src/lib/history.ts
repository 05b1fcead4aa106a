// Undo and redo over immutable snapshots. `push` records a new present and forgets what could
// be redone; consecutive pushes with the same `coalesce` key (typing in one field) make one step.

export interface History<T> {
  past: T[];
  present: T;
  future: T[];
  lastKey?: string;
}

export const LIMIT = 100;

export function start<T>(present: T): History<T> {
  return { past: [], present, future: [] };
}

export function push<T>(h: History<T>, next: T, coalesce?: string): History<T> {
  if (next === h.present) return h;
  if (coalesce !== undefined && coalesce === h.lastKey) {
    return { past: h.past, present: next, future: [], lastKey: coalesce };
  }
  const past = [...h.past, h.present].slice(-LIMIT);
  return { past, present: next, future: [], lastKey: coalesce };
}

/** Replaces the present without a step (e.g. a node being dragged, before it is dropped). */
export function replace<T>(h: History<T>, next: T): History<T> {
  return { ...h, present: next };
}

export function undo<T>(h: History<T>): History<T> {
  if (h.past.length === 0) return h;
  const previous = h.past[h.past.length - 1];
  return { past: h.past.slice(0, -1), present: previous, future: [h.present, ...h.future] };
}

export function redo<T>(h: History<T>): History<T> {
  if (h.future.length === 0) return h;
  const [next, ...future] = h.future;
  return { past: [...h.past, h.present], present: next, future };
}

export const canUndo = <T>(h: History<T>) => h.past.length > 0;
export const canRedo = <T>(h: History<T>) => h.future.length > 0;
