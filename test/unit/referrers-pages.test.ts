// Following a Referrers API answer's Link header: only to the registry's own origin.
import { describe, expect, it } from 'vitest';
import { RegistryError } from '../../src/http/errors.js';
import { nextPage } from '../../src/upstream/referrers.js';

const BASE = 'https://registry.test';

describe('nextPage', () => {
  it.each([
    [null, null],
    ['<https://registry.test/v2/a/referrers/x?page=2>; rel="prev"', null],
    ['</v2/a/referrers/x?n=2&last=y>; rel="next"', '/v2/a/referrers/x?n=2&last=y'],
    ['<https://registry.test/v2/a/referrers/x?page=2>; rel=next', '/v2/a/referrers/x?page=2'],
  ])('%j -> %j', (link, expected) => {
    expect(nextPage(link, BASE, 'referrers')).toBe(expected);
  });

  it.each(['<https://elsewhere.test/v2/a/referrers/x>; rel="next"', '<http://registry.test/v2/a/referrers/x>; rel="next"', '</other/path>; rel="next"'])(
    'refuses a next page off the registry: %s',
    (link) => {
      expect(() => nextPage(link, BASE, 'referrers')).toThrow(RegistryError);
    },
  );
});
