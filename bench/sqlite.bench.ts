/**
 * The SQLite driver vs connect-sqlite3 (express-session + SQLiteStore, the most used SQLite store
 * for express-session), each on a database file of its own in a temp directory, both in WAL mode
 * (connect-sqlite3's `concurrentDB`). The counted phase traces the app's system calls on the
 * database files.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sqlite } from 'keepsake/sqlite';
import { keepsakeApp, peerApp } from './array.bench.js';
import type { BenchApps, BenchGroup } from './harness.js';

const require = createRequire(import.meta.url);

/** Every database directory of the bench starts with this, in the system's temp directory. */
const DIRECTORY_PREFIX = 'keepsake-bench-sqlite-';

export const apps: BenchApps = {
  'keepsake-sqlite': async () => {
    const directory = await mkdtemp(join(tmpdir(), `${DIRECTORY_PREFIX}keepsake-`));
    return keepsakeApp({ driver: sqlite({ path: join(directory, 'sessions.db') }) }, () =>
      rm(directory, { recursive: true, force: true }),
    );
  },
  'connect-sqlite3': async () => {
    const directory = await mkdtemp(join(tmpdir(), `${DIRECTORY_PREFIX}connect-sqlite3-`));
    const storeFactory = require('connect-sqlite3') as (
      session: unknown,
    ) => new (
      options: object,
    ) => unknown;
    const SQLiteStore = storeFactory(require('express-session'));
    const store = new SQLiteStore({ dir: directory, db: 'sessions.db', concurrentDB: true });
    return peerApp(store, () => rm(directory, { recursive: true, force: true }));
  },
};

export const groups: BenchGroup[] = [
  {
    title: 'sqlite',
    keepsake: 'keepsake-sqlite',
    peer: 'connect-sqlite3',
    countingStore: async () => ({
      port: null,
      appFiles: new RegExp(DIRECTORY_PREFIX),
      settleMs: 50,
      stop: async () => {},
    }),
  },
];
