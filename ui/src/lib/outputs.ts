// The outputs of a node: the names an edge may leave it from (`output:` of an edge).
//
// The server's `NodeKind::outputs` is the truth. The schema does not (yet) carry it, so the
// sources, in order:
// 1. an `x-outputs` extension on the kind's schema, when the server adds one;
// 2. a small table of the kinds whose outputs are fixed and not `next`;
// 3. outputs that come from the settings: the `name`s of a list of objects (a random split's
//    `branches`, an experiment's `variants`), plus any output the description names that is
//    also a setting, when that setting is set (an experiment's `holdout`);
// 4. what the kind's description says: "Outputs: `a`, `b`", "no outgoing edges", "Ends the
//    enrollment";
// 5. else `next`.
// A new kind is right as soon as its doc comment says what its outputs are; and if not, the
// server's validation (`unknown_output`) still shows the mistake on the node.

import type { NodeKindDef } from './schema';

const FIXED: Record<string, string[]> = {
  branch: ['yes', 'no'],
  wait_for_event: ['event', 'timeout'],
  exit: [],
};

/** The backticked names in the description's "Outputs: …" sentence. */
function describedNames(description: string): string[] | undefined {
  const m = /Outputs?:\s*([\s\S]*?)(?:\.(?:\s|$)|$)/.exec(description);
  if (!m) return undefined;
  return [...m[1].matchAll(/`([^`]+)`/g)].map((x) => x[1]);
}

export function outputsFromDescription(description: string): string[] | undefined {
  const text = description.trim();
  if (/no outgoing edges|^ends the enrollment/i.test(text)) return [];
  const names = describedNames(text);
  return names && names.length > 0 ? names : undefined;
}

function isSet(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === '' || v === 0) return false;
  return !(Array.isArray(v) && v.length === 0);
}

export function outputsOf(
  type: string,
  settings: Record<string, unknown>,
  kind?: Pick<NodeKindDef, 'description' | 'xOutputs'>,
): string[] {
  if (kind?.xOutputs) return kind.xOutputs;
  if (type in FIXED) return FIXED[type];
  const named: string[] = [];
  for (const v of Object.values(settings)) {
    if (Array.isArray(v) && v.length > 0 && v.every((b) => b && typeof b === 'object' && !Array.isArray(b) && 'name' in b)) {
      for (const b of v) {
        const name = String((b as { name: unknown }).name ?? '');
        if (name !== '' && !named.includes(name)) named.push(name);
      }
    }
  }
  const described = kind ? describedNames(kind.description) ?? [] : [];
  if (named.length > 0) {
    for (const d of described) if (d in settings && isSet(settings[d]) && !named.includes(d)) named.push(d);
    return named;
  }
  const fromText = kind ? outputsFromDescription(kind.description) : undefined;
  return fromText ?? ['next'];
}
