import { describe, expect, it } from 'vitest';
import { parseChallenge } from '../../src/upstream/challenge.js';

describe('parseChallenge', () => {
  it("parses ACR's real Bearer challenge", () => {
    expect(
      parseChallenge('Bearer realm="https://dockerauth.cn-hangzhou.aliyuncs.com/auth",service="registry.aliyuncs.com:cn-hangzhou:26842"'),
    ).toEqual({
      scheme: 'bearer',
      realm: 'https://dockerauth.cn-hangzhou.aliyuncs.com/auth',
      service: 'registry.aliyuncs.com:cn-hangzhou:26842',
    });
  });

  it('includes the scope when given', () => {
    expect(
      parseChallenge(
        'Bearer realm="https://dockerauth.cn-hangzhou.aliyuncs.com/auth",service="registry.aliyuncs.com:cn-hangzhou:26842",scope="repository:team/app:pull"',
      ),
    ).toEqual({
      scheme: 'bearer',
      realm: 'https://dockerauth.cn-hangzhou.aliyuncs.com/auth',
      service: 'registry.aliyuncs.com:cn-hangzhou:26842',
      scope: 'repository:team/app:pull',
    });
  });

  it('keeps commas inside quoted values', () => {
    expect(parseChallenge('Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"')).toEqual({
      scheme: 'bearer',
      realm: 'https://auth.example/token',
      service: 'reg',
      scope: 'repository:a/b:pull,push',
    });
  });

  it('unescapes backslash-escaped quotes and backslashes in quoted values', () => {
    expect(parseChallenge('Bearer realm="https://auth.example/t",service="say \\"hi\\" \\\\ ok"')).toEqual({
      scheme: 'bearer',
      realm: 'https://auth.example/t',
      service: 'say "hi" \\ ok',
    });
  });

  it('accepts unquoted token values', () => {
    expect(parseChallenge('Bearer realm=https://auth.example/token,service=registry.example,scope=repository:a:pull')).toEqual({
      scheme: 'bearer',
      realm: 'https://auth.example/token',
      service: 'registry.example',
      scope: 'repository:a:pull',
    });
  });

  it('allows whitespace around "=" and after commas', () => {
    expect(parseChallenge('Bearer realm = "https://auth.example/token" ,  service= "reg"')).toEqual({
      scheme: 'bearer',
      realm: 'https://auth.example/token',
      service: 'reg',
    });
  });

  it('treats the scheme and parameter names case-insensitively, but not the values', () => {
    expect(parseChallenge('BEARER Realm="https://Auth.Example/Token",SERVICE="Reg"')).toEqual({
      scheme: 'bearer',
      realm: 'https://Auth.Example/Token',
      service: 'Reg',
    });
    expect(parseChallenge('bearer realm="https://a/t"')).toEqual({ scheme: 'bearer', realm: 'https://a/t' });
  });

  it('parses Basic with a realm', () => {
    expect(parseChallenge('Basic realm="Registry Realm"')).toEqual({ scheme: 'basic', realm: 'Registry Realm' });
    expect(parseChallenge('basic REALM="x"')).toEqual({ scheme: 'basic', realm: 'x' });
  });

  it('parses Basic without a realm', () => {
    expect(parseChallenge('Basic')).toEqual({ scheme: 'basic' });
  });

  it('prefers Bearer when Basic comes first in the same header', () => {
    expect(parseChallenge('Basic realm="Registry, with comma", Bearer realm="https://auth.example/token",service="reg"')).toEqual({
      scheme: 'bearer',
      realm: 'https://auth.example/token',
      service: 'reg',
    });
  });

  it('finds Bearer after an unknown scheme', () => {
    expect(parseChallenge('Negotiate, Bearer realm="https://a/t"')).toEqual({ scheme: 'bearer', realm: 'https://a/t' });
    expect(parseChallenge('Digest realm="d", nonce="abc,def", Bearer realm="https://a/t",service="s"')).toEqual({
      scheme: 'bearer',
      realm: 'https://a/t',
      service: 's',
    });
  });

  it('falls back to Basic when the Bearer challenge has no realm', () => {
    expect(parseChallenge('Bearer service="reg", Basic realm="r"')).toEqual({ scheme: 'basic', realm: 'r' });
  });

  it('returns null for Bearer without a realm and nothing else', () => {
    expect(parseChallenge('Bearer service="reg",scope="repository:a:pull"')).toBeNull();
    expect(parseChallenge('Bearer realm=""')).toBeNull();
    expect(parseChallenge('Bearer')).toBeNull();
  });

  it.each([
    ['null', null],
    ['empty', ''],
    ['whitespace', '   '],
    ['commas', ', ,'],
    ['garbage', '!!!'],
    ['quoted garbage', '"Bearer realm=x"'],
    ['unknown scheme', 'Negotiate abcdef'],
    ['unknown scheme with params', 'Digest realm="x", nonce="y"'],
  ])('returns null for %s', (_label, header) => {
    expect(parseChallenge(header)).toBeNull();
  });

  it('does not let a parameter named like a scheme start a challenge', () => {
    // "realm" and "service" are parameters of the Basic challenge, not a Bearer challenge.
    expect(parseChallenge('Basic realm="Bearer", service="x"')).toEqual({ scheme: 'basic', realm: 'Bearer' });
  });
});
