import { describe, expect, it } from 'vitest';
import { currentAfter, firstPage, nextPage, pageOf, previousPage } from './paging';

describe('paging', () => {
  it('goes forwards from the last id shown and back to where the page before started', () => {
    let pages = firstPage;
    expect(currentAfter(pages)).toBeNull();
    pages = nextPage(pages, 50);
    pages = nextPage(pages, 120);
    expect(currentAfter(pages)).toBe(120);
    expect(pages.length).toBe(3);
    pages = previousPage(pages);
    expect(currentAfter(pages)).toBe(50);
    pages = previousPage(previousPage(pages));
    expect(pages).toEqual([null]);
  });

  it('shows one item fewer than it asked for, which says there are more', () => {
    expect(pageOf([1, 2, 3], 2)).toEqual({ shown: [1, 2], more: true });
    expect(pageOf([1, 2], 2)).toEqual({ shown: [1, 2], more: false });
    expect(pageOf([], 2)).toEqual({ shown: [], more: false });
  });
});
