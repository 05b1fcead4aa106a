// The outputs of a node: the names an edge may leave it from (`output:` of an edge).
//
// The server's `NodeKind::outputs` is the truth. The schema does not (yet) carry it, so the
// order of sources is: an `x-outputs` extension on the kind's schema, when the server adds
// one; outputs that depend on the settings (a random split's branch names); a small table of
// the kinds whose outputs differ from `next`; what the kind's description says ("Outputs:
// `a`, `b`", "no outgoing edges", "Ends the enrollment"); and else `next`. A new kind whose
// outputs are not `next` is thus right as soon as its doc comment says so, and if not, the
// server's validation (`unknown_output`) still shows the mistake on the node.

import type { NodeKindDef } from './schema';

const FIXED: Record<string, string[]> = {
  branch: ['yes', 'no'],
  wait_for_event: ['event', 'timeout'],
  exit: [],
};

export function outputsFromDescription(description: string): string[] | undefined {
  if (/no outgoing edges|^ends the enrollment/i.test(description.trim())) return [];
  const m = /Outputs?:\s*((?:`[^`]+`(?:,\s*|\s+and\s+|\s+or\s+)?)+)/.exec(description);
  if (m) return [...m[1].matchAll(/`([^`]+)`/g)].map((x) => x[1]);
  return undefined;
}

export function outputsOf(
  type: string,
  settings: Record<string, unknown>,
  kind?: Pick<NodeKindDef, 'description' | 'xOutputs'>,
): string[] {
  if (kind?.xOutputs) return kind.xOutputs;
  const branches = settings.branches;
  if (Array.isArray(branches) && branches.every((b) => b && typeof b === 'object' && 'name' in b)) {
    return branches.map((b) => String((b as { name: unknown }).name ?? '')).filter((n) => n !== '');
  }
  if (type in FIXED) return FIXED[type];
  const described = kind ? outputsFromDescription(kind.description) : undefined;
  return described ?? ['next'];
}
