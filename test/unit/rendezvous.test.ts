import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ownerOf } from '../../src/cluster/rendezvous.js';

const MEMBERS = ['http://10.0.0.11:5000', 'http://10.0.0.12:5000', 'http://10.0.0.13:5000'];
const digests = Array.from({ length: 3000 }, (_, i) => `sha256:${createHash('sha256').update(String(i)).digest('hex')}`);
const owners = (members: string[]) => new Map(digests.map((d) => [d, ownerOf(d, members)]));

describe('rendezvous ownership', () => {
  it('is deterministic and does not depend on the order of the list', () => {
    const reversed = [...MEMBERS].reverse();
    for (const d of digests.slice(0, 200)) expect(ownerOf(d, reversed)).toBe(ownerOf(d, MEMBERS));
  });

  it('gives every member a share of about a third', () => {
    const counts = new Map<string, number>();
    for (const owner of owners(MEMBERS).values()) counts.set(owner, (counts.get(owner) ?? 0) + 1);
    expect([...counts.keys()].sort()).toEqual(MEMBERS);
    for (const n of counts.values()) expect(n).toBeGreaterThan(digests.length / 3 - 200);
  });

  it.each(MEMBERS)('removing %s moves only the digests it owned', (gone) => {
    const before = owners(MEMBERS);
    const after = owners(MEMBERS.filter((m) => m !== gone));
    let moved = 0;
    for (const d of digests) {
      if (before.get(d) === gone) {
        moved++;
        expect(after.get(d)).not.toBe(gone);
      } else {
        expect(after.get(d)).toBe(before.get(d));
      }
    }
    expect(moved).toBeGreaterThan(0);
  });

  it('adding a member moves digests only to the new member', () => {
    const before = owners(MEMBERS);
    const added = 'http://10.0.0.14:5000';
    const after = owners([...MEMBERS, added]);
    const moved = digests.filter((d) => after.get(d) !== before.get(d));
    expect(moved.length).toBeGreaterThan(0);
    for (const d of moved) expect(after.get(d)).toBe(added);
  });

  it('a single member owns everything', () => {
    expect(ownerOf(digests[0]!, [MEMBERS[0]!])).toBe(MEMBERS[0]);
  });
});
