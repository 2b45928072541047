import { describe, expect, it } from 'vitest';
import { RegistryError } from '../../src/http/errors.js';
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
    expect(routes.resolve({ name })).toEqual({ upstream, remoteName, via: 'prefix' });
  });

  it('adds a namespace with prefix "" and a rewrite', () => {
    const t = new RouteTable([{ prefix: '', upstream: 'acr', rewrite: 'company' }]);
    expect(t.resolve({ name: 'x/y' })).toMatchObject({ upstream: 'acr', remoteName: 'company/x/y' });
    expect(t.resolve({ name: 'nginx' })).toMatchObject({ upstream: 'acr', remoteName: 'company/nginx' });
  });

  it('returns null when no rule matches', () => {
    const t = new RouteTable([
      { prefix: 'library', upstream: 'hub' },
      { prefix: 'team/app', upstream: 'team' },
    ]);
    expect(t.resolve({ name: 'other/app' })).toBeNull();
    expect(t.resolve({ name: 'libraryx' })).toBeNull();
    expect(t.resolve({ name: 'team' })).toBeNull();
    expect(t.resolve({ name: 'team/apps' })).toBeNull();
    expect(t.resolve({ name: 'library/nginx' })).toMatchObject({ upstream: 'hub', remoteName: 'library/nginx' });
  });

  it('returns null when the only matching rule would produce an empty name', () => {
    const t = new RouteTable([{ prefix: 'team', upstream: 'acr', rewrite: '' }]);
    expect(t.resolve({ name: 'team' })).toBeNull();
    expect(t.resolve({ name: 'team/app' })).toMatchObject({ upstream: 'acr', remoteName: 'app' });
  });

  it('falls through an empty rewrite to the next longest matching rule, not straight to the catch-all', () => {
    const t = new RouteTable([
      { prefix: '', upstream: 'default' },
      { prefix: 'a', upstream: 'a-up' },
      { prefix: 'a/b', upstream: 'strip', rewrite: '' },
    ]);
    expect(t.resolve({ name: 'a/b' })).toMatchObject({ upstream: 'a-up', remoteName: 'a/b' });
    expect(t.resolve({ name: 'a/b/c' })).toMatchObject({ upstream: 'strip', remoteName: 'c' });
  });

  it('an empty table resolves nothing', () => {
    expect(new RouteTable([]).resolve({ name: 'a' })).toBeNull();
  });

  it('does not depend on the order of the rules', () => {
    const permutations = [RULES, [...RULES].reverse(), [RULES[3]!, RULES[0]!, RULES[5]!, RULES[2]!, RULES[6]!, RULES[1]!, RULES[4]!]];
    for (const rules of permutations) {
      const t = new RouteTable(rules);
      for (const [name, upstream, remoteName] of table) {
        expect(t.resolve({ name }), `${name} with rules ${rules.map((r) => r.prefix).join(',')}`).toMatchObject({ upstream, remoteName });
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

describe('RouteTable: selecting the upstream by registry host', () => {
  const hosts = [
    { upstream: 'personal', hosts: ['registry.cn-hangzhou.aliyuncs.com'] },
    { upstream: 'ee', hosts: ['corp-registry-vpc.cn-shanghai.cr.aliyuncs.com', 'corp-registry.cn-shanghai.cr.aliyuncs.com'] },
  ];
  const t = new RouteTable([{ prefix: 'library', upstream: 'personal', rewrite: 'hub-mirror' }], hosts);

  const cases: [req: { name: string; ns?: string }, expected: unknown][] = [
    // an in-path host selects its upstream; the rest of the name passes unchanged (no prefix rewrite)
    [{ name: 'registry.cn-hangzhou.aliyuncs.com/ns/app' }, { upstream: 'personal', remoteName: 'ns/app', via: 'path-host' }],
    [{ name: 'registry.cn-hangzhou.aliyuncs.com/library/nginx' }, { upstream: 'personal', remoteName: 'library/nginx', via: 'path-host' }],
    // any alias of an upstream works, in the path and as ns
    [{ name: 'corp-registry.cn-shanghai.cr.aliyuncs.com/team/app' }, { upstream: 'ee', remoteName: 'team/app', via: 'path-host' }],
    [{ name: 'team/app', ns: 'corp-registry-vpc.cn-shanghai.cr.aliyuncs.com' }, { upstream: 'ee', remoteName: 'team/app', via: 'ns' }],
    [{ name: 'team/app', ns: 'CORP-REGISTRY.cn-shanghai.cr.aliyuncs.com' }, { upstream: 'ee', remoteName: 'team/app', via: 'ns' }],
    // ns=docker.io: Hub names go through the prefix routes
    [{ name: 'library/nginx', ns: 'docker.io' }, { upstream: 'personal', remoteName: 'hub-mirror/nginx', via: 'prefix' }],
    [{ name: 'library/nginx', ns: 'registry-1.docker.io' }, { upstream: 'personal', remoteName: 'hub-mirror/nginx', via: 'prefix' }],
    // an unknown registry in ns is never served from another registry's names
    [{ name: 'library/nginx', ns: 'quay.io' }, null],
    // a host alone is not a repository
    [{ name: 'registry.cn-hangzhou.aliyuncs.com' }, null],
    // an unconfigured host in the path is just a name (and here matches no route)
    [{ name: 'quay.io/coreos/etcd' }, null],
  ];

  it.each(cases)('%j -> %j', (req, expected) => {
    expect(t.resolve(req)).toEqual(expected);
  });
});

describe('RouteTable.require: the NAME_UNKNOWN policy', () => {
  const t = new RouteTable([{ prefix: 'team', upstream: 'acr' }], [{ upstream: 'acr', hosts: ['registry.test'] }]);

  it('returns the route when one matches', () => {
    expect(t.require('team/app')).toEqual({ upstream: 'acr', remoteName: 'team/app', via: 'prefix' });
    expect(t.require('app', 'registry.test')).toEqual({ upstream: 'acr', remoteName: 'app', via: 'ns' });
  });

  const refused: [name: string, ns: string | undefined, message: string][] = [
    ['other/app', undefined, 'no route matches repository other/app: add a [[routes]] entry for it'],
    ['team/app', 'quay.io', "no route matches repository team/app for registry quay.io (add it to an upstream's aliases, or route it)"],
    ['other/app', 'docker.io', "no route matches repository other/app for registry docker.io (add it to an upstream's aliases, or route it)"],
  ];
  it.each(refused)('refuses %s (ns %s) with 404 NAME_UNKNOWN saying what to configure', (name, ns, message) => {
    let caught: unknown;
    try {
      t.require(name, ns);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(RegistryError);
    expect(caught).toMatchObject({ kind: 'NAME_UNKNOWN', status: 404, code: 'NAME_UNKNOWN', message });
  });
});
