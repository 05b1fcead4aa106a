// What the segment editor makes of the server's answers: where a condition's errors are (the
// text form's line and column, or the JSON form's path), the source line an error points into,
// and a segment id suggested by its name. Pure, so it is unit-tested.

/** One problem with a condition, as `invalid_condition` answers list them (docs/api.md#segments):
 * a parse error of the text form has `line`, `column` and `offset`; a validation error has the
 * `path` of the atom in the JSON form and a `code`. */
export interface ConditionError {
  message: string;
  line?: number;
  column?: number;
  offset?: number;
  path?: string;
  code?: string;
}

/** The errors of an error answer: its `errors` when it has them, else its message alone. */
export function conditionErrors(error: { message: string; field?: string; errors?: unknown[] }): ConditionError[] {
  const listed = (error.errors ?? []).filter((e): e is Record<string, unknown> => typeof e === 'object' && e !== null && typeof (e as { message?: unknown }).message === 'string');
  if (listed.length === 0) return [{ message: error.message, path: error.field && error.field !== 'text' ? error.field : undefined }];
  return listed.map((e) => ({
    message: e.message as string,
    line: typeof e.line === 'number' ? e.line : undefined,
    column: typeof e.column === 'number' ? e.column : undefined,
    offset: typeof e.offset === 'number' ? e.offset : undefined,
    path: typeof e.path === 'string' && e.path ? e.path : undefined,
    code: typeof e.code === 'string' ? e.code : undefined,
  }));
}

/** Where an error is, in words: `line 1, column 31`, `at did.within`, or '' when it does not
 * say. */
export function errorPlace(e: ConditionError): string {
  if (e.line !== undefined && e.column !== undefined) return `line ${e.line}, column ${e.column}`;
  if (e.offset !== undefined) return `character ${e.offset + 1}`;
  if (e.path) return `at ${e.path}`;
  return '';
}

/** The 1-based line and column (in characters) of a byte offset into `text` as UTF-8, as the
 * server counts its `offset`. */
export function lineColumnOf(text: string, offset: number): { line: number; column: number } {
  const bytes = new TextEncoder().encode(text);
  const before = new TextDecoder().decode(bytes.slice(0, Math.max(0, Math.min(offset, bytes.length))));
  const lastBreak = before.lastIndexOf('\n');
  return { line: before.split('\n').length, column: [...before.slice(lastBreak + 1)].length + 1 };
}

/** The source line an error points into and the column of its caret (1-based), or null when the
 * error has no position in `text` (a validation error, or text edited since). Columns count
 * characters, as the server's do. */
export function errorExcerpt(text: string, e: ConditionError): { source: string; column: number } | null {
  let place = e.line !== undefined && e.column !== undefined ? { line: e.line, column: e.column } : null;
  if (!place && e.offset !== undefined) place = lineColumnOf(text, e.offset);
  if (!place) return null;
  const lines = text.split('\n');
  const source = lines[place.line - 1];
  if (source === undefined) return null;
  // At the end of the text (e.g. "expected a value") the caret stands just after the last one.
  const column = Math.min(Math.max(place.column, 1), [...source].length + 1);
  return { source, column };
}

/** A segment id for a name: lower case letters, digits and `-` (ids are 1-100 letters, digits,
 * `-` or `_`). */
export function segmentIdFor(name: string): string {
  return name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 100);
}

/** Whether `id` is a valid segment id (the server's rule). */
export function validSegmentId(id: string): boolean {
  return /^[A-Za-z0-9_-]{1,100}$/.test(id);
}

/** A journey whose triggers name a segment (`used_by` of a segment). */
export interface SegmentUse {
  journey_id: string;
  journey_name: string;
  status: string;
  live: boolean;
  draft: boolean;
}

/** Where a journey uses the segment: `live version`, `draft`, or both. */
export function useWhere(u: SegmentUse): string {
  if (u.live && u.draft) return 'live version and draft';
  return u.live ? 'live version' : 'draft';
}
