import { describe, expect, it } from 'vitest';
import { SentVersions } from '../src/events/sent-versions.ts';

describe('SentVersions (what a transition stream has sent)', () => {
  it('lets a version through only when it is newer than the last one sent', () => {
    const sent = new SentVersions(10_000);
    expect(sent.get('a')).toBe(0);
    expect(sent.advance('a', 2)).toBe(true);
    expect(sent.advance('a', 2)).toBe(false);
    expect(sent.advance('a', 1)).toBe(false);
    expect(sent.advance('b', 1)).toBe(true);
    expect(sent.advance('a', 3)).toBe(true);
    expect([sent.get('a'), sent.get('b'), sent.get('c')]).toEqual([3, 1, 0]);
  });

  it('keeps every version as it grows past its small form, and forgets the least recently sent beyond its limit', () => {
    const sent = new SentVersions(100);
    for (let i = 0; i < 100; i++) expect(sent.advance(`t${i}`, i + 1)).toBe(true);
    for (let i = 0; i < 100; i++) expect(sent.get(`t${i}`)).toBe(i + 1);
    // t0 was sent again, so t1 is now the one sent longest ago: the 101st transition evicts it.
    expect(sent.advance('t0', 5)).toBe(true);
    expect(sent.advance('t100', 1)).toBe(true);
    expect(sent.get('t1')).toBe(0);
    expect(sent.get('t0')).toBe(5);
    expect(sent.get('t2')).toBe(3);
  });

  it('a limit below its small form holds once it becomes a Map', () => {
    const sent = new SentVersions(10);
    for (let i = 0; i < 40; i++) sent.advance(`t${i}`, 1);
    const kept = Array.from({ length: 40 }, (_, i) => sent.get(`t${i}`)).filter((v) => v > 0).length;
    expect(kept).toBe(10);
    expect(sent.get('t39')).toBe(1);
  });

  it('in its small form, a transition sent again counts as the most recent when it grows', () => {
    const sent = new SentVersions(33);
    for (let i = 0; i < 32; i++) sent.advance(`t${i}`, 1);
    sent.advance('t0', 2);
    // The 33rd turns the list into a Map in the order last sent (t1 first, t0 last); the 34th
    // goes past the limit and evicts t1, not t0.
    sent.advance('t32', 1);
    sent.advance('t33', 1);
    expect(sent.get('t0')).toBe(2);
    expect(sent.get('t1')).toBe(0);
  });
});
