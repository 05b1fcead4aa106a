import { describe, expect, it } from 'vitest';
import { conditionErrors, errorExcerpt, errorPlace, lineColumnOf, segmentIdFor, useWhere, validSegmentId } from './segments';

describe('condition errors', () => {
  it('reads a parse error with its line, column and offset', () => {
    // As POST /v1/segments/preview answers `did "Order Completed" in last soon`.
    const errors = conditionErrors({
      message: 'expected a duration such as 30d at line 1, column 31 (found `soon`)',
      field: 'text',
      errors: [{ message: 'expected a duration such as 30d', line: 1, column: 31, offset: 30 }],
    });
    expect(errors).toEqual([{ message: 'expected a duration such as 30d', line: 1, column: 31, offset: 30, path: undefined, code: undefined }]);
    expect(errorPlace(errors[0])).toBe('line 1, column 31');
  });

  it('reads validation errors with their path, and an answer without a list as its message', () => {
    const errors = conditionErrors({
      message: 'not in a segment',
      field: 'condition.event',
      errors: [{ code: 'enrollment_scope', path: 'event', message: 'not in a segment' }],
    });
    expect(errors[0]).toMatchObject({ path: 'event', code: 'enrollment_scope' });
    expect(errorPlace(errors[0])).toBe('at event');
    expect(conditionErrors({ message: 'give `condition` or `text`', field: 'condition' })).toEqual([{ message: 'give `condition` or `text`', path: 'condition' }]);
    expect(errorPlace({ message: 'x' })).toBe('');
  });

  it('points a caret into the line an error is on', () => {
    const text = 'plan = "pro"\nand did "Order" in last soon';
    expect(errorExcerpt(text, { message: 'm', line: 2, column: 25 })).toEqual({ source: 'and did "Order" in last soon', column: 25 });
    // At the end of the text the caret stands after the last character.
    expect(errorExcerpt('plan =', { message: 'm', line: 1, column: 99 })).toEqual({ source: 'plan =', column: 7 });
    // Only an offset: found from the text (a byte offset, as the server counts).
    expect(errorExcerpt('naïve = 1\nx ?', { message: 'm', offset: 13 })).toEqual({ source: 'x ?', column: 3 });
    // A line the text does not have (edited since), or no position at all.
    expect(errorExcerpt('plan exists', { message: 'm', line: 3, column: 1 })).toBeNull();
    expect(errorExcerpt('plan exists', { message: 'm', path: 'traits' })).toBeNull();
  });

  it('counts a byte offset in characters', () => {
    expect(lineColumnOf('é = 1', 2)).toEqual({ line: 1, column: 2 });
    expect(lineColumnOf('a\nbc', 3)).toEqual({ line: 2, column: 2 });
    expect(lineColumnOf('abc', 0)).toEqual({ line: 1, column: 1 });
  });
});

describe('segment ids', () => {
  it('suggests an id from a name', () => {
    expect(segmentIdFor('Repeat buyers (EU)')).toBe('repeat-buyers-eu');
    expect(segmentIdFor('  Café VIPs ')).toBe('cafe-vips');
    expect(segmentIdFor('!!!')).toBe('');
    expect(validSegmentId('repeat-buyers_2')).toBe(true);
    expect(validSegmentId('bad id')).toBe(false);
    expect(validSegmentId('')).toBe(false);
  });

  it('says where a journey uses a segment', () => {
    const use = { journey_id: 'j', journey_name: 'J', status: 'live' };
    expect(useWhere({ ...use, live: true, draft: true })).toBe('live version and draft');
    expect(useWhere({ ...use, live: false, draft: true })).toBe('draft');
    expect(useWhere({ ...use, live: true, draft: false })).toBe('live version');
  });
});
