// Paging through a listing the API pages by id (`limit`, `after`: the last id of the previous
// page), forwards and back. The API gives no total, so a page is asked for with one item more
// than is shown: that item's presence says whether there is a next page. Pure, so it is
// unit-tested.

/** Where each page visited so far starts (the `after` to ask with; null: from the beginning),
 * the current page last. */
export type PageStarts = ReadonlyArray<number | null>;

export const firstPage: PageStarts = [null];

/** The `after` of the current page. */
export function currentAfter(pages: PageStarts): number | null {
  return pages[pages.length - 1] ?? null;
}

/** The page after the current one, which ends at item `lastId`. */
export function nextPage(pages: PageStarts, lastId: number): PageStarts {
  return [...pages, lastId];
}

/** The page before the current one (the first stays the first). */
export function previousPage(pages: PageStarts): PageStarts {
  return pages.length > 1 ? pages.slice(0, -1) : firstPage;
}

/** What a page shows of the `size + 1` items asked for, and whether there are more. */
export function pageOf<T>(fetched: T[], size: number): { shown: T[]; more: boolean } {
  return { shown: fetched.slice(0, size), more: fetched.length > size };
}
