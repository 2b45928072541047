// The README's configuration examples are loaded and validated, so the documentation cannot rot.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import type { ZodTypeAny } from 'zod';
import { parseConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';

const README = readFileSync(resolve(import.meta.dirname, '../../README.md'), 'utf8');
const blocks = (lang: string) => [...README.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);
/** Mirror configuration examples, as opposed to client files (hosts.toml, registries.conf) shown in TOML too. */
const mirrorConfigs = blocks('toml').filter((b) => /^\[(server|access|storage|cache|log|admin|upstreams\.[^\]]+)\]|^\[\[routes\]\]/m.test(b));
const clientConfigs = blocks('toml').filter((b) => !mirrorConfigs.includes(b));

const ENV = { ACR_PASSWORD: 'x', ACR_MIRROR_ADMIN_TOKEN: 'an-admin-token-for-the-test', ALIBABA_CLOUD_ACCESS_KEY_ID: 'id', ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'secret', ACR_MIRROR_CLUSTER_SECRET: '8d41c7e09b2f46a3a5e6f1c07b9d2e54' };

describe('README examples', () => {
  it('has the examples this test is meant to check', () => {
    expect(mirrorConfigs.length).toBeGreaterThanOrEqual(2);
    expect(clientConfigs.length).toBeGreaterThanOrEqual(2);
  });

  it.each(mirrorConfigs.map((b, i) => [i, b]))('mirror configuration example %i is valid', (_i, block) => {
    expect(() => parseConfig(parseToml(block), { env: ENV, baseDir: '/tmp', source: 'README' })).not.toThrow();
  });

  it('client configuration examples are valid TOML with the keys the clients expect', () => {
    const hosts = clientConfigs.map((b) => parseToml(b)).find((d) => 'server' in d) as { server: string; host: Record<string, { capabilities: string[] }> };
    expect(hosts.server).toMatch(/^https:\/\//);
    expect(Object.values(hosts.host)[0]!.capabilities).toEqual(['pull', 'resolve']);
    const registries = clientConfigs.map((b) => parseToml(b)).find((d) => 'registry' in d) as { registry: { location: string; mirror: { location: string }[] }[] };
    expect(registries.registry[0]!.mirror[0]!.location).toBe('mirror.lan:5000');
  });

  it('the daemon.json example is valid JSON with registry-mirrors', () => {
    const json = blocks('json').map((b) => JSON.parse(b) as Record<string, unknown>);
    expect(json.some((d) => Array.isArray(d['registry-mirrors']))).toBe(true);
  });

  it('documents every configuration key the schema accepts', () => {
    const keys = schemaKeys(configSchema);
    expect(keys.length).toBeGreaterThan(30);
    for (const key of keys) {
      if (key === 'password') continue; // exists only to be refused with a helpful message
      expect(README, key).toMatch(new RegExp('`([a-z_]+\\.)*' + key + '`|`\\[\\[?' + key + '[\\].]'));
    }
  });
});

/** Every object key anywhere in a zod schema (through effects, defaults, optionals, records and arrays). */
function schemaKeys(schema: ZodTypeAny): string[] {
  const def = schema._def as { typeName: string; schema?: ZodTypeAny; innerType?: ZodTypeAny; valueType?: ZodTypeAny; type?: ZodTypeAny; shape?: () => Record<string, ZodTypeAny> };
  switch (def.typeName) {
    case 'ZodEffects':
      return schemaKeys(def.schema!);
    case 'ZodDefault':
    case 'ZodOptional':
      return schemaKeys(def.innerType!);
    case 'ZodRecord':
      return schemaKeys(def.valueType!);
    case 'ZodArray':
      return schemaKeys(def.type!);
    case 'ZodObject':
      return Object.entries(def.shape!()).flatMap(([k, v]) => [k, ...schemaKeys(v)]);
    default:
      return [];
  }
}
