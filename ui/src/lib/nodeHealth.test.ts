import { describe, expect, it } from 'vitest';
import { sendWarning } from './nodeHealth';

describe('sendWarning', () => {
  it('says nothing about a healthy node or too few sends', () => {
    expect(sendWarning({ sent: 100, failed: 2, suppressed: 3, bounced: 1 })).toBeNull();
    expect(sendWarning({ sent: 0, suppressed: 4 })).toBeNull();
  });

  it('marks a node whose sends are mostly suppressed, saying how many', () => {
    expect(sendWarning({ sent: 0, suppressed: 20 })).toMatch(/^100% of sends were suppressed/);
    expect(sendWarning({ sent: 4, suppressed: 6 })).toMatch(/^60% of sends were suppressed/);
  });

  it('marks mostly failed sends, and both together', () => {
    expect(sendWarning({ sent: 1, failed: 9 })).toMatch(/^90% of sends failed/);
    expect(sendWarning({ sent: 4, failed: 3, suppressed: 3 })).toBe('60% of sends were suppressed or failed');
  });

  it('marks many bounces among the sent', () => {
    expect(sendWarning({ sent: 20, bounced: 4 })).toBe('20% of sent messages bounced: check the addresses');
  });
});
