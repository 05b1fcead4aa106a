// The outputs of a node: the names an edge may leave it from (`output:` of an edge).
//
// Each node kind's schema publishes them in its `x-outputs` extension (see
// `crates/core/src/kinds/mod.rs`, `Output`), a list whose parts are, in order:
// - a string: that output, always (`["yes", "no"]` for a branch; `[]` for an exit);
// - `{from, field}`: the `field` of each object in the settings list `from` (a random split's
//   branch names: `{"from": "branches", "field": "name"}`);
// - `{output, when}`: `output` while the setting `when` is set, i.e. present and not null,
//   false, 0, "" or empty (an experiment's `{"output": "holdout", "when": "holdout"}`).
// Each name counts once; empty names (a branch still being typed) are left out. The server
// computes a node's outputs from the same list, so nothing here names a node kind.

/** One part of a kind's `x-outputs`. */
export type OutputPart = string | { from: string; field: string } | { output: string; when: string };

/** A kind's `x-outputs` as published, or undefined when it is not a list of known parts. */
export function parseOutputs(raw: unknown): OutputPart[] | undefined {
  if (!Array.isArray(raw)) return undefined;
  const parts: OutputPart[] = [];
  for (const p of raw) {
    if (typeof p === 'string') parts.push(p);
    else if (p && typeof p === 'object' && typeof p.from === 'string' && typeof p.field === 'string') parts.push({ from: p.from, field: p.field });
    else if (p && typeof p === 'object' && typeof p.output === 'string' && typeof p.when === 'string') parts.push({ output: p.output, when: p.when });
    else return undefined;
  }
  return parts;
}

function isSet(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === '' || v === 0) return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v as object).length > 0;
  return true;
}

/** The output an edge takes by default, and the outputs of a node whose kind is unknown. */
export const DEFAULT_OUTPUTS = ['next'];

export function outputsOf(settings: Record<string, unknown>, parts: OutputPart[] | undefined): string[] {
  if (!parts) return DEFAULT_OUTPUTS;
  const names: string[] = [];
  const add = (name: unknown) => {
    if (typeof name === 'string' && name !== '' && !names.includes(name)) names.push(name);
  };
  for (const part of parts) {
    if (typeof part === 'string') add(part);
    else if ('from' in part) {
      const list = settings[part.from];
      if (Array.isArray(list)) for (const item of list) if (item && typeof item === 'object') add((item as Record<string, unknown>)[part.field]);
    } else if (isSet(settings[part.when])) add(part.output);
  }
  return names;
}
