import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import Database from 'better-sqlite3';

export type Db = Database.Database;

/** Schema migrations, applied in order; PRAGMA user_version records how many have run. */
const MIGRATIONS: string[] = [
  `CREATE TABLE manifests (
     digest      TEXT PRIMARY KEY,
     media_type  TEXT NOT NULL,
     size        INTEGER NOT NULL,
     body        BLOB NOT NULL,
     created_at  INTEGER NOT NULL
   );
   CREATE TABLE tags (
     upstream    TEXT NOT NULL,
     repo        TEXT NOT NULL,
     tag         TEXT NOT NULL,
     digest      TEXT NOT NULL REFERENCES manifests(digest),
     checked_at  INTEGER NOT NULL,
     PRIMARY KEY (upstream, repo, tag)
   );
   CREATE INDEX tags_by_digest ON tags(digest);
   CREATE TABLE blobs (
     digest      TEXT PRIMARY KEY,
     size        INTEGER NOT NULL,
     created_at  INTEGER NOT NULL,
     last_access INTEGER NOT NULL
   );
   CREATE TABLE refs (
     manifest    TEXT NOT NULL REFERENCES manifests(digest) ON DELETE CASCADE,
     child       TEXT NOT NULL,
     PRIMARY KEY (manifest, child)
   );
   CREATE INDEX refs_by_child ON refs(child);`,
  // eviction: when a manifest was last served (its blobs go last), and blobs by last access
  `ALTER TABLE manifests ADD COLUMN last_access INTEGER NOT NULL DEFAULT 0;
   UPDATE manifests SET last_access = created_at;
   CREATE INDEX blobs_by_last_access ON blobs(last_access);`,
  // admin: warm jobs (request and per-image status as JSON) and how often each cached tag is asked for
  `CREATE TABLE warm_jobs (
     id          TEXT PRIMARY KEY,
     state       TEXT NOT NULL,
     request     TEXT NOT NULL,
     images      TEXT NOT NULL,
     attempts    INTEGER NOT NULL,
     bytes_done  INTEGER NOT NULL,
     bytes_total INTEGER NOT NULL,
     error       TEXT,
     created_at  INTEGER NOT NULL,
     updated_at  INTEGER NOT NULL
   );
   CREATE INDEX warm_jobs_by_state ON warm_jobs(state);
   CREATE TABLE tag_usage (
     upstream    TEXT NOT NULL,
     repo        TEXT NOT NULL,
     tag         TEXT NOT NULL,
     hits        INTEGER NOT NULL,
     last_pulled INTEGER NOT NULL,
     PRIMARY KEY (upstream, repo, tag)
   );`,
  // referrers (OCI 1.1) of a digest as an upstream listed them: artifact_type '' for the whole list, else a list
  // the upstream itself filtered to that type; manifests is the JSON array of descriptors. subjects: the subject
  // of each cached manifest that has one (what the cache itself can list as referrers; gc keeps them with it)
  `CREATE TABLE subjects (
     manifest    TEXT PRIMARY KEY REFERENCES manifests(digest) ON DELETE CASCADE,
     subject     TEXT NOT NULL
   );
   CREATE INDEX subjects_by_subject ON subjects(subject);
   INSERT INTO subjects (manifest, subject)
     SELECT digest, json_extract(CAST(body AS TEXT), '$.subject.digest') FROM manifests
      WHERE json_valid(CAST(body AS TEXT)) AND json_type(CAST(body AS TEXT), '$.subject.digest') = 'text';
   CREATE TABLE referrers (
     upstream      TEXT NOT NULL,
     repo          TEXT NOT NULL,
     digest        TEXT NOT NULL,
     artifact_type TEXT NOT NULL,
     manifests     TEXT NOT NULL,
     checked_at    INTEGER NOT NULL,
     PRIMARY KEY (upstream, repo, digest, artifact_type)
   );`,
];

export function openDatabase(path: string): Db {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  return prepared(db);
}

/**
 * An in-memory copy of the database at path (an empty one when there is none), for a dry run: nothing it does
 * reaches the file, and it creates no file (a database not in use is read as a file; one in use has its WAL beside it).
 */
export async function openDatabaseCopy(path: string): Promise<Db> {
  if (!existsSync(path)) return prepared(new Database(':memory:'));
  const image = existsSync(`${path}-wal`) ? serializeReadOnly(path) : await readFile(path);
  // header bytes 18-19 say WAL: the copy has no file for one, so it journals in memory like a rollback database
  image[18] = image[19] = 1;
  return prepared(new Database(image));
}

function serializeReadOnly(path: string): Buffer {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return db.serialize();
  } finally {
    db.close();
  }
}

function prepared(db: Db): Db {
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db);
  return db;
}

function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`database schema version ${current} is newer than this acr-mirror (${MIGRATIONS.length}); upgrade acr-mirror`);
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
