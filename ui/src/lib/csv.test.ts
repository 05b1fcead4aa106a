import { describe, expect, it } from 'vitest';
import { batches, detectDelimiter, headerProblem, importRows, parseCsv, rejectedByServer } from './csv';

describe('reading a CSV file', () => {
  it('finds the delimiter the header row holds most outside quotes', () => {
    expect(detectDelimiter('user_id;email;"a,b,c"\n1;x;y')).toBe(';');
    expect(detectDelimiter('user_id\temail\n')).toBe('\t');
    expect(detectDelimiter('user_id|email|name')).toBe('|');
    expect(detectDelimiter('email')).toBe(',');
  });

  it('reads quoted cells with delimiters, quotes and line breaks, and numbers rows by their first line', () => {
    const parsed = parseCsv('\uFEFFuser_id,note\r\nann,"says ""hi"", twice"\n\nbob,"two\nlines"\ncy,plain\n');
    expect(parsed.header).toEqual(['user_id', 'note']);
    expect(parsed.records).toEqual([
      { line: 2, cells: ['ann', 'says "hi", twice'] },
      { line: 4, cells: ['bob', 'two\nlines'] },
      { line: 6, cells: ['cy', 'plain'] },
    ]);
    expect(parsed.rejected).toEqual([]);
  });

  it('rejects a row of another shape and an unclosed quote', () => {
    const parsed = parseCsv('email,name\na@example.com,Ann,extra\nb@example.com,Bo\nc@example.com,"open');
    expect(parsed.records).toEqual([{ line: 3, cells: ['b@example.com', 'Bo'] }]);
    expect(parsed.rejected).toEqual([
      { line: 4, column: '', message: 'a quoted cell is not closed before the end of the file' },
      { line: 2, column: '', message: 'the row has 3 cells, the header 2' },
    ]);
  });

  it('needs a user_id or an email column', () => {
    expect(headerProblem(['user_id', 'plan'], ',')).toBe('');
    expect(headerProblem(['name;email'], ',')).toContain('found: name;email');
    expect(headerProblem(['a', 'b'], '\t')).toContain('separated by “tab”');
  });
});

describe('rows to import', () => {
  it('maps the known columns and makes the others traits, leaving empty cells out', () => {
    const { rows, rejected } = importRows(parseCsv('user_id,email,phone,timezone,plan,city\nann, ann@example.com ,+14155552671,Europe/Paris,pro,\n'));
    expect(rejected).toEqual([]);
    expect(rows).toEqual([{ line: 2, contact: { user_id: 'ann', email: 'ann@example.com', phone: '+14155552671', timezone: 'Europe/Paris', traits: { plan: 'pro' } } }]);
  });

  it('rejects a row without an id, and rows repeating a contact or an email, with the line they repeat', () => {
    const csv = ['user_id,email', 'ann,a@example.com', ',', 'ann,other@example.com', 'bob,A@example.com', ',solo@example.com', ',solo@example.com'].join('\n');
    const { rows, rejected } = importRows(parseCsv(csv));
    expect(rows.map((r) => r.line)).toEqual([2, 6]);
    expect(rejected).toEqual([
      { line: 3, column: 'user_id', message: 'a row needs a user_id or an email' },
      { line: 4, column: 'user_id', message: 'user_id `ann` is also on line 2' },
      { line: 5, column: 'email', message: 'email `a@example.com` is also on line 2, for another contact' },
      { line: 7, column: 'email', message: "email `solo@example.com` (the contact's id, as it has no user_id) is also on line 6" },
    ]);
  });

  it('sends batches and maps the server’s rejections back to lines and columns', () => {
    expect(batches([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
    expect(batches([], 2)).toEqual([]);
    expect(
      rejectedByServer(
        [
          { index: 1, field: 'contacts[1].traits.email', message: 'not an email address' },
          { index: 0, field: 'contacts[0].user_id', message: 'too long' },
        ],
        [7, 9],
      ),
    ).toEqual([
      { line: 9, column: 'email', message: 'not an email address' },
      { line: 7, column: 'user_id', message: 'too long' },
    ]);
  });
});
