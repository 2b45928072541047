import { describe, expect, it } from 'vitest';
import { parseRange, type RangeRequest } from '../../src/http/range.js';

const cases: [header: string | undefined, size: number, expected: RangeRequest][] = [
  // no header / ignorable
  [undefined, 10, null],
  ['', 10, null],
  // simple ranges
  ['bytes=0-0', 10, { start: 0, end: 0 }],
  ['bytes=0-9', 10, { start: 0, end: 9 }],
  ['bytes=2-5', 10, { start: 2, end: 5 }],
  ['bytes=9-9', 10, { start: 9, end: 9 }],
  // open-ended
  ['bytes=5-', 10, { start: 5, end: 9 }],
  ['bytes=0-', 10, { start: 0, end: 9 }],
  ['bytes=9-', 10, { start: 9, end: 9 }],
  // suffix ranges
  ['bytes=-3', 10, { start: 7, end: 9 }],
  ['bytes=-10', 10, { start: 0, end: 9 }],
  ['bytes=-100', 10, { start: 0, end: 9 }],
  ['bytes=-0', 10, 'unsatisfiable'],
  // end beyond the size is clamped
  ['bytes=5-100', 10, { start: 5, end: 9 }],
  ['bytes=0-99999999999999999999', 10, { start: 0, end: 9 }],
  // start at or beyond the size
  ['bytes=10-10', 10, 'unsatisfiable'],
  ['bytes=10-20', 10, 'unsatisfiable'],
  ['bytes=11-', 10, 'unsatisfiable'],
  ['bytes=10-', 10, 'unsatisfiable'],
  // last-pos < first-pos: invalid, the header is ignored
  ['bytes=5-2', 10, null],
  // several ranges, other units, malformed syntax: ignored
  ['bytes=0-1,3-4', 10, null],
  ['bytes=0-1, 3-4', 10, null],
  ['items=0-5', 10, null],
  ['bytes=-', 10, null],
  ['bytes=a-b', 10, null],
  ['bytes=1-2-3', 10, null],
  ['bytes 0-5', 10, null],
  ['0-5', 10, null],
  ['bytes=+1-2', 10, null],
  ['bytes=-+2', 10, null],
  // whitespace and case
  [' bytes=1-3 ', 10, { start: 1, end: 3 }],
  ['bytes = 1 - 3', 10, { start: 1, end: 3 }],
  ['Bytes=1-3', 10, { start: 1, end: 3 }],
  ['BYTES=-2', 10, { start: 8, end: 9 }],
  // empty representation
  ['bytes=0-0', 0, 'unsatisfiable'],
  ['bytes=0-', 0, 'unsatisfiable'],
  ['bytes=-5', 0, 'unsatisfiable'],
  [undefined, 0, null],
  // one-byte representation
  ['bytes=0-', 1, { start: 0, end: 0 }],
  ['bytes=-1', 1, { start: 0, end: 0 }],
  ['bytes=1-', 1, 'unsatisfiable'],
];

describe('parseRange', () => {
  it.each(cases)('(%j, size %d) -> %j', (header, size, expected) => {
    expect(parseRange(header, size)).toEqual(expected);
  });

  it('returns ranges that lie inside the representation', () => {
    for (const [header, size] of cases) {
      const r = parseRange(header, size);
      if (r === null || r === 'unsatisfiable') continue;
      expect(r.start).toBeGreaterThanOrEqual(0);
      expect(r.end).toBeGreaterThanOrEqual(r.start);
      expect(r.end).toBeLessThan(size);
    }
  });
});
