import { describe, expect, it } from 'vitest';
import { addressOfFilter, consentOf, consentParts, engagementText, filterFromAddress, filterQuery, filters, nextSort, noFilter, propertySummary, searchQuery, sortState, timelineText } from './contacts';

describe('contact search', () => {
  it('takes a phone number typed with spaces as the number, anything else as a part', () => {
    expect(searchQuery('+1 415 555-2671')).toEqual({ phone: '+14155552671' });
    expect(searchQuery(' ann@exa ')).toEqual({ q: 'ann@exa' });
    expect(searchQuery('crm-45')).toEqual({ q: 'crm-45' });
    expect(searchQuery('   ')).toEqual({});
  });

  it('adds the segment and the list to the search', () => {
    expect(filterQuery({ ...noFilter, text: 'ann', segment: 'active' })).toEqual({ q: 'ann', segment: 'active' });
    expect(filterQuery({ ...noFilter, list: 'vip' })).toEqual({ list: 'vip' });
    expect(filters(noFilter)).toBe(false);
    expect(filters({ ...noFilter, list: 'vip' })).toBe(true);
  });

  it('adds a trait, a consent and the order, which alone filters nothing', () => {
    const f = { ...noFilter, trait: ' plan:pro ', consent: 'email:news:unsubscribed', sort: '-created_at' };
    expect(filterQuery(f)).toEqual({ trait: 'plan:pro', consent: 'email:news:unsubscribed', sort: '-created_at' });
    expect(filters({ ...noFilter, sort: 'email' })).toBe(false);
    expect(filters({ ...noFilter, trait: 'plan:pro' })).toBe(true);
  });

  it('keeps the filter in the address and reads it back', () => {
    const f = { ...noFilter, text: 'ann lee', list: 'v&p', consent: 'email:*:none', sort: '-email' };
    const address = addressOfFilter(f);
    expect(address).toBe('?q=ann+lee&list=v%26p&consent=email%3A*%3Anone&sort=-email');
    expect(filterFromAddress(address)).toEqual(f);
    expect(addressOfFilter(noFilter)).toBe('');
    expect(filterFromAddress('')).toEqual(noFilter);
  });

  it('sorts a column its first way, then the other way', () => {
    expect(nextSort('', 'email')).toBe('email');
    expect(nextSort('email', 'email')).toBe('-email');
    expect(nextSort('-email', 'email')).toBe('email');
    expect(nextSort('email', 'created_at')).toBe('-created_at');
    expect(nextSort('-created_at', 'created_at')).toBe('created_at');
    expect(nextSort('', 'id')).toBe('-id');
    expect(sortState('', 'id')).toBe('ascending');
    expect(sortState('-updated_at', 'updated_at')).toBe('descending');
    expect(sortState('email', 'id')).toBe('none');
  });

  it('splits a consent filter at its first and last colon', () => {
    expect(consentParts('email:a:b:none')).toEqual({ channel: 'email', topic: 'a:b', status: 'none' });
    expect(consentParts('')).toEqual({ channel: 'email', topic: '*', status: '' });
    expect(consentOf({ channel: 'sms', topic: ' ', status: 'pending' })).toBe('sms:*:pending');
    expect(consentOf({ channel: 'sms', topic: 'news', status: '' })).toBe('');
  });
});

describe('timeline', () => {
  it("says when a message was opened and clicked, if it was", () => {
    const at = (t: string) => t.slice(11, 16);
    expect(engagementText({ opened_at: '2026-01-01T10:00:00Z', clicked_at: '2026-01-01T10:05:00Z' }, at)).toBe('opened 10:00 · clicked 10:05');
    expect(engagementText({ opened_at: '2026-01-01T10:00:00Z', clicked_at: null }, at)).toBe('opened 10:00');
    expect(engagementText({}, at)).toBe('');
  });

  it('shows an event by its name and a few of its plain properties', () => {
    expect(propertySummary({ cart_id: 'c1', name: 'Mug', quantity: 2, products: [{ name: 'x' }] })).toBe('cart_id: c1 · name: Mug · quantity: 2 · +1 more');
    expect(propertySummary({ a: 1, b: 2, c: 3, d: 4, e: 5 })).toBe('a: 1 · b: 2 · c: 3 · d: 4 · +1 more');
    expect(propertySummary({})).toBe('');
    expect(timelineText({ type: 'event', at: '', name: 'Product Added', properties: { cart_id: 'c1' } })).toBe('Product Added — cart_id: c1');
    expect(timelineText({ type: 'event', at: '', name: 'Signed Up', properties: {} })).toBe('Signed Up');
  });
});
