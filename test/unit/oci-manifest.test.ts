import { describe, expect, it } from 'vitest';
import { RegistryError } from '../../src/http/errors.js';
import { manifestContent, parseManifest, referencedDigests } from '../../src/oci/manifest.js';

const d = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
const json = (doc: unknown) => Buffer.from(JSON.stringify(doc));
const ROOT = d(999);

describe('parseManifest', () => {
  it('reads an image manifest: config, layers, media type and subject', () => {
    const body = json({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d(1), size: 10 },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: d(2), size: 20, annotations: { a: 'b' } }],
      subject: { digest: d(3), size: 30 },
    });
    expect(parseManifest(body, ROOT)).toEqual({
      kind: 'image',
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d(1), size: 10 },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: d(2), size: 20, annotations: { a: 'b' } }],
      subject: { digest: d(3), size: 30 },
    });
  });

  it('reads an index with its entries platforms, and takes manifests over a config', () => {
    const body = json({
      manifests: [
        { digest: d(1), size: 1, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
        { digest: d(2), size: 2, platform: { os: 'unknown', architecture: 'unknown' }, annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } },
      ],
      config: { digest: d(3), size: 3 },
    });
    expect(parseManifest(body, ROOT)).toEqual({
      kind: 'index',
      manifests: [
        { digest: d(1), size: 1, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
        { digest: d(2), size: 2, platform: { os: 'unknown', architecture: 'unknown' }, annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } },
      ],
    });
  });

  it('accepts an image manifest without layers', () => {
    expect(parseManifest(json({ config: { digest: d(1), size: 1 }, layers: [] }), ROOT)).toMatchObject({ kind: 'image', layers: [] });
  });

  it('drops a malformed platform or subject rather than the descriptor', () => {
    const content = parseManifest(json({ manifests: [{ digest: d(1), size: 1, platform: { os: 1 } }], subject: { digest: 'x' } }), ROOT);
    expect(content).toEqual({ kind: 'index', manifests: [{ digest: d(1), size: 1 }] });
  });

  const refused: [string, Buffer, RegExp][] = [
    ['not JSON', Buffer.from('{'), /is not JSON/],
    ['a JSON string', json('manifest'), /not a JSON object/],
    ['null', json(null), /not a JSON object/],
    ['Docker schema 1', json({ schemaVersion: 1, fsLayers: [{ blobSum: d(1) }] }), /neither an image manifest nor an index/],
    ['a config without layers', json({ config: { digest: d(1), size: 1 } }), /neither/],
    ['a layer without size', json({ config: { digest: d(1), size: 1 }, layers: [{ digest: d(2) }] }), /neither/],
    ['a negative size', json({ config: { digest: d(1), size: -1 }, layers: [] }), /neither/],
    ['a sha512 layer', json({ config: { digest: d(1), size: 1 }, layers: [{ digest: `sha512:${'a'.repeat(128)}`, size: 1 }] }), /neither/],
    ['an index entry with a short digest', json({ manifests: [{ digest: 'sha256:abc', size: 1 }] }), /neither/],
  ];
  it.each(refused)('refuses %s with MANIFEST_INVALID naming the digest', (_label, body, why) => {
    let caught: unknown;
    try {
      parseManifest(body, ROOT);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(RegistryError);
    expect((caught as RegistryError).kind).toBe('MANIFEST_INVALID');
    expect((caught as RegistryError).message).toContain(ROOT);
    expect((caught as RegistryError).message).toMatch(why);
    expect(manifestContent(body, ROOT)).toBeNull();
  });
});

describe('referencedDigests', () => {
  it('lists config, layers and subject of an image once each', () => {
    const content = parseManifest(json({ config: { digest: d(1), size: 1 }, layers: [{ digest: d(2), size: 2 }, { digest: d(2), size: 2 }], subject: { digest: d(3), size: 3 } }), ROOT);
    expect(referencedDigests(content)).toEqual([d(1), d(2), d(3)]);
  });

  it('lists the child manifests of an index', () => {
    const content = parseManifest(json({ manifests: [{ digest: d(4), size: 4 }, { digest: d(5), size: 5 }] }), ROOT);
    expect(referencedDigests(content)).toEqual([d(4), d(5)]);
  });
});
