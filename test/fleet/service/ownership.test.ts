import { describe, expect, it } from 'vitest';
import { rendezvousOwner } from '../../../fleet/service/ownership.js';

describe('splitting things between workers (rendezvous hashing)', () => {
  const things = Array.from({ length: 3000 }, (_, i) => `thing-${i}`);

  it('gives every thing exactly one owner, about evenly', () => {
    const workers = ['a', 'b', 'c'];
    const counts = new Map<string, number>();
    for (const t of things) {
      const owner = rendezvousOwner(t, workers) ?? 'none';
      counts.set(owner, (counts.get(owner) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual(workers);
    for (const n of counts.values()) expect(n).toBeGreaterThan(things.length / 3 - 200);
  });

  it("moves only the lost worker's things when one goes, and none when the list order changes", () => {
    const before = new Map(things.map((t) => [t, rendezvousOwner(t, ['a', 'b', 'c'])]));
    const after = new Map(things.map((t) => [t, rendezvousOwner(t, ['c', 'a'])]));
    for (const t of things) {
      if (before.get(t) !== 'b') expect(after.get(t)).toBe(before.get(t));
      else expect(['a', 'c']).toContain(after.get(t));
    }
    expect(rendezvousOwner('x', [])).toBeUndefined();
  });
});
