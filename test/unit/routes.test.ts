import { describe, expect, it } from 'vitest';
import { RouteTable, type RouteRule } from '../../src/routing/routes.js';

const RULES: RouteRule[] = [
  { prefix: '', upstream: 'default' },
  { prefix: 'library', upstream: 'hub', rewrite: 'hub-mirror' },
  { prefix: 'team', upstream: 'team-acr', rewrite: '' },
  { prefix: 'team/special', upstream: 'special' },
  { prefix: 'company/exact/app', upstream: 'exact' },
  { prefix: 'vendor', upstream: 'vendor-acr', rewrite: 'company/vendor' },
  { prefix: 'ext', upstream: 'ext-acr', rewrite: 'company' },
];

const table: [name: string, upstream: string, remoteName: string][] = [
  // catch-all passes names through unchanged
  ['a', 'default', 'a'],
  ['x/y', 'default', 'x/y'],
  // rewrite one namespace to another
  ['library/nginx', 'hub', 'hub-mirror/nginx'],
  ['library/a/b', 'hub', 'hub-mirror/a/b'],
  // the prefix itself as a name is rewritten too
  ['library', 'hub', 'hub-mirror'],
  // whole components only
  ['libraryx/a', 'default', 'libraryx/a'],
  ['librar/a', 'default', 'librar/a'],
  ['teams/app', 'default', 'teams/app'],
  // strip a namespace
  ['team/app', 'team-acr', 'app'],
  ['team/a/b', 'team-acr', 'a/b'],
  // longest prefix wins over a shorter one that also matches
  ['team/special/x', 'special', 'team/special/x'],
  ['team/special', 'special', 'team/special'],
  ['team/specialx', 'team-acr', 'specialx'],
  // an exact-name route
  ['company/exact/app', 'exact', 'company/exact/app'],
  ['company/exact/app2', 'default', 'company/exact/app2'],
  ['company/exact', 'default', 'company/exact'],
  // rewrite to a multi-component namespace
  ['vendor/tool', 'vendor-acr', 'company/vendor/tool'],
  ['ext/a/b', 'ext-acr', 'company/a/b'],
  // strip rule whose result would be empty: falls through to the catch-all
  ['team', 'default', 'team'],
];

describe('RouteTable', () => {
  const routes = new RouteTable(RULES);

  it.each(table)('%s -> %s : %s', (name, upstream, remoteName) => {
    const r = routes.resolve(name);
    expect(r).not.toBeNull();
    expect(r!.upstream).toBe(upstream);
    expect(r!.remoteName).toBe(remoteName);
    expect(RULES).toContainEqual(r!.rule);
    expect(r!.rule.upstream).toBe(upstream);
  });

  it('adds a namespace with prefix "" and a rewrite', () => {
    const t = new RouteTable([{ prefix: '', upstream: 'acr', rewrite: 'company' }]);
    expect(t.resolve('x/y')).toMatchObject({ upstream: 'acr', remoteName: 'company/x/y' });
    expect(t.resolve('nginx')).toMatchObject({ upstream: 'acr', remoteName: 'company/nginx' });
  });

  it('returns null when no rule matches', () => {
    const t = new RouteTable([
      { prefix: 'library', upstream: 'hub' },
      { prefix: 'team/app', upstream: 'team' },
    ]);
    expect(t.resolve('other/app')).toBeNull();
    expect(t.resolve('libraryx')).toBeNull();
    expect(t.resolve('team')).toBeNull();
    expect(t.resolve('team/apps')).toBeNull();
    expect(t.resolve('library/nginx')).toMatchObject({ upstream: 'hub', remoteName: 'library/nginx' });
  });

  it('returns null when the only matching rule would produce an empty name', () => {
    const t = new RouteTable([{ prefix: 'team', upstream: 'acr', rewrite: '' }]);
    expect(t.resolve('team')).toBeNull();
    expect(t.resolve('team/app')).toMatchObject({ upstream: 'acr', remoteName: 'app' });
  });

  it('falls through an empty rewrite to the next longest matching rule, not straight to the catch-all', () => {
    const t = new RouteTable([
      { prefix: '', upstream: 'default' },
      { prefix: 'a', upstream: 'a-up' },
      { prefix: 'a/b', upstream: 'strip', rewrite: '' },
    ]);
    expect(t.resolve('a/b')).toMatchObject({ upstream: 'a-up', remoteName: 'a/b' });
    expect(t.resolve('a/b/c')).toMatchObject({ upstream: 'strip', remoteName: 'c' });
  });

  it('an empty table resolves nothing', () => {
    expect(new RouteTable([]).resolve('a')).toBeNull();
  });

  it('does not depend on the order of the rules', () => {
    const permutations = [RULES, [...RULES].reverse(), [RULES[3]!, RULES[0]!, RULES[5]!, RULES[2]!, RULES[6]!, RULES[1]!, RULES[4]!]];
    for (const rules of permutations) {
      const t = new RouteTable(rules);
      for (const [name, upstream, remoteName] of table) {
        expect(t.resolve(name), `${name} with rules ${rules.map((r) => r.prefix).join(',')}`).toMatchObject({ upstream, remoteName });
      }
    }
  });

  it('does not mutate the rules it is given', () => {
    const rules = [...RULES];
    const before = JSON.stringify(rules);
    new RouteTable(rules);
    expect(JSON.stringify(rules)).toBe(before);
  });
});
