import { describe, expect, it } from 'vitest';
import { filterQuery, filters, noFilter, propertySummary, searchQuery, timelineText } from './contacts';

describe('contact search', () => {
  it('takes a phone number typed with spaces as the number, anything else as a part', () => {
    expect(searchQuery('+1 415 555-2671')).toEqual({ phone: '+14155552671' });
    expect(searchQuery(' ann@exa ')).toEqual({ q: 'ann@exa' });
    expect(searchQuery('crm-45')).toEqual({ q: 'crm-45' });
    expect(searchQuery('   ')).toEqual({});
  });

  it('adds the segment and the list to the search', () => {
    expect(filterQuery({ text: 'ann', segment: 'active', list: '' })).toEqual({ q: 'ann', segment: 'active' });
    expect(filterQuery({ text: '', segment: '', list: 'vip' })).toEqual({ list: 'vip' });
    expect(filters(noFilter)).toBe(false);
    expect(filters({ ...noFilter, list: 'vip' })).toBe(true);
  });
});

describe('timeline', () => {
  it('shows an event by its name and a few of its plain properties', () => {
    expect(propertySummary({ cart_id: 'c1', name: 'Mug', quantity: 2, products: [{ name: 'x' }] })).toBe('cart_id: c1 · name: Mug · quantity: 2 · +1 more');
    expect(propertySummary({ a: 1, b: 2, c: 3, d: 4, e: 5 })).toBe('a: 1 · b: 2 · c: 3 · d: 4 · +1 more');
    expect(propertySummary({})).toBe('');
    expect(timelineText({ type: 'event', at: '', name: 'Product Added', properties: { cart_id: 'c1' } })).toBe('Product Added — cart_id: c1');
    expect(timelineText({ type: 'event', at: '', name: 'Signed Up', properties: {} })).toBe('Signed Up');
  });
});
