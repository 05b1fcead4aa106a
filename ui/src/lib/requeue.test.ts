import { describe, expect, it } from 'vitest';
import { emptyRequeueForm, failedListQuery, requeueFilter } from './requeue';

describe('the requeue form', () => {
  it('needs at least one criterion', () => {
    const r = requeueFilter(emptyRequeueForm);
    expect('error' in r && r.error).toMatch(/at least one criterion/);
    expect(requeueFilter({ ...emptyRequeueForm, journeyId: '   ' })).toHaveProperty('error');
  });

  it('sends only what was filled in, trimmed', () => {
    expect(requeueFilter({ ...emptyRequeueForm, journeyId: ' welcome ', channel: 'email', error: ' refused ' })).toEqual({
      filter: { journey_id: 'welcome', channel: 'email', error: 'refused' },
    });
  });

  it('passes durations on for the server clock and turns date-times into UTC timestamps', () => {
    const r = requeueFilter({ ...emptyRequeueForm, failedSince: '3d', failedUntil: '2025-03-01T09:30' });
    expect(r).toEqual({ filter: { failed_since: '3d', failed_until: new Date('2025-03-01T09:30').toISOString() } });
    expect(requeueFilter({ ...emptyRequeueForm, failedSince: '1d12h' })).toEqual({ filter: { failed_since: '1d12h' } });
  });

  it('says which time is wrong', () => {
    const r = requeueFilter({ ...emptyRequeueForm, failedUntil: 'yesterday' });
    expect('error' in r && r.error).toMatch(/^Failed until: "yesterday"/);
  });

  it('refuses an error text longer than the server takes', () => {
    expect(requeueFilter({ ...emptyRequeueForm, error: 'x'.repeat(501) })).toHaveProperty('error');
  });

  it('lists the failed messages of the journey and channel', () => {
    expect(failedListQuery({ ...emptyRequeueForm, journeyId: 'welcome', channel: 'sms' })).toEqual({
      status: 'failed',
      limit: '100',
      journey_id: 'welcome',
      channel: 'sms',
    });
  });
});
