// Importing a CSV file from the browser, as `waymark import contacts` does from a terminal
// (crates/server/src/import.rs): the delimiter found from the header row, a UTF-8 byte order mark
// dropped, each row read on its own (columns `user_id`, `email`, `phone`, `timezone`; any other
// becomes a trait), a row repeating a contact an earlier row named rejected with that row's line.
// The rows then go to POST /v1/contacts/import in batches, and the server checks each row (the
// email, phone and time zone); its rejections are mapped back to lines here. Pure, so it is
// unit-tested.

/** The delimiters a header row is searched for, in the order a tie is settled. */
const DELIMITERS = [',', ';', '\t', '|'];

/** The delimiter of a CSV text: the one of `,` `;` tab `|` its header row holds most often
 * outside quotes; a comma when it holds none (spreadsheets in much of Europe write `;`). */
export function detectDelimiter(text: string): string {
  const counts = DELIMITERS.map(() => 0);
  let quoted = false;
  for (const c of text) {
    if (c === '"') quoted = !quoted;
    else if ((c === '\n' || c === '\r') && !quoted) break;
    else if (!quoted) {
      const i = DELIMITERS.indexOf(c);
      if (i >= 0) counts[i] += 1;
    }
  }
  let best = 0;
  counts.forEach((n, i) => {
    if (n > counts[best]) best = i;
  });
  return counts[best] === 0 ? ',' : DELIMITERS[best];
}

/** A row of the file and the line it starts on (1-based; the header is line 1). */
export interface CsvRecord {
  line: number;
  cells: string[];
}

/** A row left out, with why. `column` is empty when the row as a whole is wrong. */
export interface Rejected {
  line: number;
  column: string;
  message: string;
}

export interface ParsedCsv {
  header: string[];
  records: CsvRecord[];
  /** Rows that are not CSV of the header's shape (a different number of cells, an open quote). */
  rejected: Rejected[];
}

/** Reads CSV text (RFC 4180: quoted cells may hold the delimiter, `""` and line breaks). Blank
 * lines are skipped; a row with another number of cells than the header is rejected. */
export function parseCsv(input: string, delimiter = detectDelimiter(input.replace(/^\uFEFF/, ''))): ParsedCsv {
  const text = input.replace(/^\uFEFF/, '');
  const rows: CsvRecord[] = [];
  const rejected: Rejected[] = [];
  let cells: string[] = [];
  let cell = '';
  let quoted = false;
  let line = 1;
  let start = 1;
  let touched = false;
  const endRow = () => {
    cells.push(cell);
    if (touched || cells.length > 1 || cell !== '') rows.push({ line: start, cells });
    cells = [];
    cell = '';
    touched = false;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else {
        if (c === '\n') line++;
        cell += c;
      }
    } else if (c === '"') {
      quoted = true;
      touched = true;
    } else if (c === delimiter) {
      cells.push(cell);
      cell = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      endRow();
      line++;
      start = line;
    } else cell += c;
  }
  if (quoted) rejected.push({ line: start, column: '', message: 'a quoted cell is not closed before the end of the file' });
  else endRow();
  const [head, ...records] = rows;
  const header = (head?.cells ?? []).map((h) => h.trim());
  const fitting: CsvRecord[] = [];
  for (const r of records) {
    if (r.cells.length === header.length) fitting.push(r);
    else rejected.push({ line: r.line, column: '', message: `the row has ${r.cells.length} cells, the header ${header.length}` });
  }
  return { header, records: fitting, rejected };
}

/** Why a header cannot be imported ('' when it can): it needs a `user_id` or an `email` column. */
export function headerProblem(header: string[], delimiter: string): string {
  if (header.includes('user_id') || header.includes('email')) return '';
  const shown = delimiter === '\t' ? 'tab' : delimiter;
  return `the header row needs a user_id or an email column (found: ${header.join(', ') || 'nothing'}; columns separated by “${shown}”)`;
}

/** One contact of the import API (`POST /v1/contacts/import`). */
export interface ImportRow {
  user_id?: string;
  email?: string;
  phone?: string;
  timezone?: string;
  traits: Record<string, string>;
}

const FIELDS = ['user_id', 'email', 'phone', 'timezone'] as const;

/** A row as a contact to import: empty cells left out, surrounding spaces trimmed. */
export function contactOf(header: string[], cells: string[]): ImportRow | Rejected['message'] {
  const row: ImportRow = { traits: {} };
  header.forEach((column, i) => {
    const value = (cells[i] ?? '').trim();
    if (!value) return;
    if ((FIELDS as readonly string[]).includes(column)) row[column as (typeof FIELDS)[number]] = value;
    else row.traits[column] = value;
  });
  if (!row.user_id && !row.email) return 'a row needs a user_id or an email';
  return row;
}

/** The rows to import with their lines, and those left out: rows without an id, and rows naming
 * a contact an earlier row named (the same `user_id`, or without one the same email), or an
 * email an earlier row gave another contact, as the server's own import reports them. */
export function importRows(parsed: ParsedCsv): { rows: Array<{ line: number; contact: ImportRow }>; rejected: Rejected[] } {
  const rows: Array<{ line: number; contact: ImportRow }> = [];
  const rejected: Rejected[] = [...parsed.rejected];
  const ids = new Map<string, number>();
  const emails = new Map<string, number>();
  for (const r of parsed.records) {
    const contact = contactOf(parsed.header, r.cells);
    if (typeof contact === 'string') {
      rejected.push({ line: r.line, column: 'user_id', message: contact });
      continue;
    }
    const id = contact.user_id ?? contact.email!;
    const email = contact.email?.toLowerCase();
    const first = ids.get(id);
    if (first !== undefined) {
      rejected.push(
        contact.user_id
          ? { line: r.line, column: 'user_id', message: `user_id \`${id}\` is also on line ${first}` }
          : { line: r.line, column: 'email', message: `email \`${email}\` (the contact's id, as it has no user_id) is also on line ${first}` },
      );
      continue;
    }
    const earlier = email === undefined ? undefined : emails.get(email);
    if (earlier !== undefined) {
      rejected.push({ line: r.line, column: 'email', message: `email \`${email}\` is also on line ${earlier}, for another contact` });
      continue;
    }
    if (email !== undefined) emails.set(email, r.line);
    ids.set(id, r.line);
    rows.push({ line: r.line, contact });
  }
  return { rows, rejected };
}

/** `items` in batches of at most `size`. */
export function batches<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** The server's rejections of a batch (`errors: [{index, field, message}]`, `field` such as
 * `contacts[3].traits.email`) as lines of the file and columns. */
export function rejectedByServer(errors: Array<{ index: number; field: string; message: string }>, lines: number[]): Rejected[] {
  return errors.map((e) => ({
    line: lines[e.index] ?? 0,
    column: e.field.replace(/^contacts\[\d+\]\.?/, '').replace(/^traits\./, ''),
    message: e.message,
  }));
}
