import { describe, expect, it } from 'vitest';
import { allSelected, selectedAmong, toggle, toggleAll } from './selection';

describe('selecting contacts', () => {
  it('toggles one contact', () => {
    const one = toggle(new Set(), 3);
    expect([...one]).toEqual([3]);
    expect([...toggle(one, 3)]).toEqual([]);
  });

  it('selects all on the page, or none when all are', () => {
    const page = [1, 2, 3];
    const some = new Set([2, 9]);
    expect(allSelected(some, page)).toBe(false);
    const all = toggleAll(some, page);
    expect(allSelected(all, page)).toBe(true);
    // 9, selected elsewhere, stays selected either way.
    expect([...all].sort()).toEqual([1, 2, 3, 9]);
    expect([...toggleAll(all, page)]).toEqual([9]);
    expect(allSelected(new Set(), [])).toBe(false);
  });

  it('sends only the selected contacts that are shown, in their order', () => {
    expect(selectedAmong(new Set([3, 1, 9]), [1, 2, 3])).toEqual([1, 3]);
  });
});
