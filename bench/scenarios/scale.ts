import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MediaType } from '../../test/e2e/harness/images.js';
import { sequentialLatencies } from '../clients.js';
import { repeat, type Scenario } from '../scenario.js';
import { below, metric, quantile } from '../stats.js';

const ACCEPT = [MediaType.dockerManifest, MediaType.dockerList, MediaType.ociManifest, MediaType.ociIndex].join(', ');
const REPOS = 100;

interface Seeded {
  /** `<repo>:<tag>` and `<repo>@<digest>` paths below /v2/, one per tag. */
  byTag: string[];
  byDigest: string[];
}

/** Scenario 6: start-up and manifest lookups with many blobs and tags recorded (synthetic rows and files). */
export const scale: Scenario = {
  id: 6,
  title: 'Scale: start-up and manifest lookups',
  async run({ stack, sizes, progress }) {
    const dataDir = await stack.newDir('scale');
    const emptyStarts: number[] = [];
    const starts: number[] = [];
    const tagP50: number[] = [];
    const tagP99: number[] = [];
    const digestP50: number[] = [];
    const digestP99: number[] = [];
    try {
      progress('start-up on an empty cache (reference)');
      await repeat(sizes.scaleStarts, async () => {
        const empty = await stack.newDir('scale-empty');
        const m = await stack.startMirror(empty);
        emptyStarts.push(m.startupMs);
        await m.stop();
        await rm(empty, { recursive: true, force: true });
      });
      // The mirror creates its schema; the rows then go straight into it.
      await (await stack.startMirror(dataDir)).stop();
      progress(`seeding ${sizes.scaleBlobs} blobs and ${sizes.scaleTags} tags`);
      const seeded = seed(dataDir, sizes.scaleBlobs, sizes.scaleTags);

      await repeat(sizes.scaleStarts, async (i) => {
        progress(`start-up and ${sizes.scaleLookups} lookups by tag and by digest, run ${i + 1}/${sizes.scaleStarts}`);
        const m = await stack.startMirror(dataDir);
        try {
          starts.push(m.startupMs);
          const pick = (paths: string[]) => sample(paths, sizes.scaleLookups, i).map((p) => `${m.url}/v2/${p}`);
          const tags = await sequentialLatencies(pick(seeded.byTag), { accept: ACCEPT });
          const digests = await sequentialLatencies(pick(seeded.byDigest), { accept: ACCEPT });
          tagP50.push(quantile(tags, 0.5));
          tagP99.push(quantile(tags, 0.99));
          digestP50.push(quantile(digests, 0.5));
          digestP99.push(quantile(digests, 0.99));
        } finally {
          await m.stop();
        }
      });
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
    const start = metric(`start-up with ${sizes.scaleBlobs} blobs, ${sizes.scaleTags} tags`, 'ms', starts);
    return {
      metrics: [
        metric('(reference) start-up on an empty cache', 'ms', emptyStarts),
        start,
        metric('GET manifest by tag (first request for each tag): p50', 'ms', tagP50),
        metric('GET manifest by tag (first request for each tag): p99', 'ms', tagP99),
        metric('GET manifest by digest (first request for each digest): p50', 'ms', digestP50),
        metric('GET manifest by digest (first request for each digest): p99', 'ms', digestP99),
      ],
      checks: [below('start-up < 1 s (worst run)', start.max, 1000, 'ms')],
      notes: [
        'Start-up: from spawning `node dist/main.js serve` to the timestamp of its "listening" log line. ' +
          `Rows inserted with better-sqlite3 into the schema the mirror created: ${sizes.scaleBlobs} blobs (with small files under blobs/), ` +
          `${sizes.scaleTags} manifests (each referencing a config and a layer) and as many tags over ${REPOS} repositories. ` +
          `Lookups: ${sizes.scaleLookups} distinct random tags, then as many digests, one keep-alive connection, on a freshly started mirror.`,
      ],
    };
  },
};

/** Synthetic rows and blob files in the mirror's own schema; tags are fresh (checked now). */
function seed(dataDir: string, blobs: number, tags: number): Seeded {
  const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
  const blobDir = join(dataDir, 'blobs', 'sha256');
  const now = Date.now();
  const db = new Database(join(dataDir, 'mirror.db'));
  const seeded: Seeded = { byTag: [], byDigest: [] };
  try {
    const insertBlob = db.prepare('INSERT INTO blobs (digest, size, created_at, last_access) VALUES (?, ?, ?, ?)');
    const insertManifest = db.prepare('INSERT INTO manifests (digest, media_type, size, body, created_at) VALUES (?, ?, ?, ?, ?)');
    const insertRef = db.prepare('INSERT INTO refs (manifest, child) VALUES (?, ?)');
    const insertTag = db.prepare('INSERT INTO tags (upstream, repo, tag, digest, checked_at) VALUES (?, ?, ?, ?, ?)');
    const blobDigests: Array<{ digest: string; size: number }> = [];
    db.transaction(() => {
      for (let i = 0; i < blobs; i++) {
        const content = Buffer.from(`synthetic blob ${i}\n`);
        const hex = sha(content);
        mkdirSync(join(blobDir, hex.slice(0, 2)), { recursive: true });
        writeFileSync(join(blobDir, hex.slice(0, 2), hex), content);
        insertBlob.run(`sha256:${hex}`, content.length, now, now);
        blobDigests.push({ digest: `sha256:${hex}`, size: content.length });
      }
      for (let i = 0; i < tags; i++) {
        const config = blobDigests[(2 * i) % blobs]!;
        const layer = blobDigests[(2 * i + 1) % blobs]!;
        const body = Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: MediaType.dockerManifest,
            config: { mediaType: MediaType.dockerConfig, ...config },
            layers: [{ mediaType: MediaType.dockerLayer, ...layer }],
          }),
        );
        const digest = `sha256:${sha(body)}`;
        const repo = `scale/repo-${i % REPOS}`;
        insertManifest.run(digest, MediaType.dockerManifest, body.length, body, now);
        insertRef.run(digest, config.digest);
        insertRef.run(digest, layer.digest);
        insertTag.run('acr', repo, `t${i}`, digest, now);
        seeded.byTag.push(`${repo}/manifests/t${i}`);
        seeded.byDigest.push(`${repo}/manifests/${digest}`);
      }
    })();
  } finally {
    db.close();
  }
  return seeded;
}

/** n distinct items of list, a different deterministic choice per run. */
function sample(list: readonly string[], n: number, run: number): string[] {
  const out: string[] = [];
  const step = 7919; // prime, so i * step mod length visits distinct items while n <= length
  for (let i = 0; i < Math.min(n, list.length); i++) out.push(list[(run * 104_729 + i * step) % list.length]!);
  return out;
}
