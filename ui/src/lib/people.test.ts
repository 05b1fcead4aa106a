import { describe, expect, it } from 'vitest';
import { addressOfPeople, csvNextCursor, joinCsvPages, peopleFromAddress, peoplePath, peopleQuery, peopleSearch, peopleTitle, reportPathOf } from './people';

describe('the address of a list', () => {
  it('reads back what it writes', () => {
    const p = { show: 'messaged' as const, node: 'mail-bold', status: 'opened', channel: 'email', version: 2, limit: 50 };
    const search = addressOfPeople(p);
    expect(search).toBe('?show=messaged&node=mail-bold&status=opened&channel=email&version=2');
    expect(peopleFromAddress(search)).toEqual(p);
  });
  it('takes the defaults for what it does not understand, and keeps status and channel for messages only', () => {
    expect(peopleFromAddress('?show=everyone&status=lost&limit=5000&version=x')).toEqual({ show: 'messaged', limit: 50 });
    expect(peopleFromAddress('?show=waiting&node=wait&status=opened&channel=sms&limit=5')).toEqual({ show: 'waiting', node: 'wait', limit: 5 });
    expect(addressOfPeople({ show: 'converted', status: 'opened' })).toBe('?show=converted');
  });
  it('keeps the report it was opened from, for the way back, and never asks the API with it', () => {
    const p = peopleFromAddress('?show=converted&report=days%3D7%26bucket%3Dhour');
    expect(p).toEqual({ show: 'converted', limit: 50, report: 'days=7&bucket=hour' });
    expect(reportPathOf('cart', p)).toBe('/journeys/cart/report?days=7&bucket=hour');
    expect(reportPathOf('cart', { show: 'converted', limit: 50 } as never)).toBe('/journeys/cart/report');
    expect(peopleQuery(p)).toEqual({ show: 'converted', limit: 50 });
    expect(addressOfPeople(p)).toBe('?show=converted&report=days%3D7%26bucket%3Dhour');
  });
  it('links a number of a journey to its list', () => {
    expect(peoplePath('cart one', { show: 'waiting', node: 'wait 2d', version: 1 })).toBe('/journeys/cart%20one/people?show=waiting&node=wait+2d&version=1');
  });
});

describe('the query of a page', () => {
  it('asks the page after a cursor with what the list narrows to', () => {
    const p = { show: 'messaged' as const, node: 'mail', status: 'clicked', limit: 50 };
    expect(peopleQuery(p)).toEqual({ show: 'messaged', node: 'mail', status: 'clicked', limit: 50 });
    expect(peopleQuery(p, 17)).toEqual({ show: 'messaged', node: 'mail', status: 'clicked', limit: 50, after: 17 });
    expect(peopleSearch(p, 17, 1000)).toBe('show=messaged&limit=1000&node=mail&status=clicked&after=17');
  });
  it('never sends a status or channel for waiting and converted (the API refuses them)', () => {
    expect(peopleQuery({ show: 'converted', status: 'opened', channel: 'email', limit: 10 })).toEqual({ show: 'converted', limit: 10 });
  });
});

describe('a list in words', () => {
  it('says what is listed', () => {
    expect(peopleTitle({ show: 'messaged', node: 'mail', status: 'opened', limit: 50 })).toBe('Messages of mail opened by people');
    expect(peopleTitle({ show: 'messaged', channel: 'sms', version: 2, limit: 50 })).toBe('Messages (sms, version 2)');
    expect(peopleTitle({ show: 'waiting', node: 'wait', limit: 50 })).toBe('Waiting now at wait');
    expect(peopleTitle({ show: 'converted', node: 'mail', limit: 50 })).toBe('Conversions credited to mail');
    expect(peopleTitle({ show: 'converted', limit: 50 })).toBe('Conversions');
  });
});

describe('the CSV download', () => {
  const header = 'contact_id,user_id,email,enrollment_id,node,entered_at,wake_at,message_id,channel,status\n';
  const page = header + '1,u1,"a,b@example.com",10,mail,,,101,email,sent\n2,u2,"line\nbreak",11,mail,,,102,email,sent\n';
  it('pages by the message for messages and by the enrollment otherwise, and stops at a page not full', () => {
    expect(csvNextCursor('messaged', page, 2)).toBe(102);
    expect(csvNextCursor('converted', page, 2)).toBe(11);
    expect(csvNextCursor('waiting', page, 3)).toBeNull();
    expect(csvNextCursor('messaged', header, 1000)).toBeNull();
  });
  it('joins pages under one header', () => {
    const next = header + '3,u3,c@example.com,12,mail,,,103,email,bounced\n';
    expect(joinCsvPages([page, next])).toBe(page + '3,u3,c@example.com,12,mail,,,103,email,bounced\n');
    expect(joinCsvPages([page, header])).toBe(page);
    expect(joinCsvPages([])).toBe('');
  });
});
