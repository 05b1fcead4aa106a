// Which contacts of a page are selected (the contacts page's checkboxes, to add them to a list
// at once). Pure, so it is unit-tested.

/** `selected` with `id` added, or taken out when it was in. */
export function toggle(selected: ReadonlySet<number>, id: number): Set<number> {
  const out = new Set(selected);
  if (out.has(id)) out.delete(id);
  else out.add(id);
  return out;
}

/** Whether every one of `ids` is selected (none shown: no). */
export function allSelected(selected: ReadonlySet<number>, ids: readonly number[]): boolean {
  return ids.length > 0 && ids.every((id) => selected.has(id));
}

/** "Select all on this page": selects every one of `ids`, or, when they all are, none of them. */
export function toggleAll(selected: ReadonlySet<number>, ids: readonly number[]): Set<number> {
  const out = new Set(selected);
  if (allSelected(selected, ids)) ids.forEach((id) => out.delete(id));
  else ids.forEach((id) => out.add(id));
  return out;
}

/** The selected ids that are among `ids` (shown now), in their order. */
export function selectedAmong(selected: ReadonlySet<number>, ids: readonly number[]): number[] {
  return ids.filter((id) => selected.has(id));
}
