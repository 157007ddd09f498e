/**
 * The file driver vs session-file-store (express-session + FileStore), each in its own temp
 * directory. The counted phase traces the app's own system calls on its session files. extras()
 * measures GC of BENCH_GC_FILES (100 000) session files, 10 % expired, in this process: how long
 * it takes and the longest event-loop stall meanwhile.
 */

import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createSessionManager } from 'keepsake';
import { keepsakeApp, peerApp } from './array.bench.js';
import { type BenchApps, type BenchGroup, settings } from './harness.js';

const require = createRequire(import.meta.url);

/** Every session directory of the bench starts with this, in the system's temp directory. */
const DIRECTORY_PREFIX = 'keepsake-bench-files-';
const GC_EXPIRED_SHARE = 0.1;
const STALL_TARGET_MS = 50;

export const apps: BenchApps = {
  'keepsake-file': async () => {
    const savePath = await mkdtemp(join(tmpdir(), `${DIRECTORY_PREFIX}keepsake-`));
    return keepsakeApp({ savePath }, () => rm(savePath, { recursive: true, force: true }));
  },
  'session-file-store': async () => {
    const path = await mkdtemp(join(tmpdir(), `${DIRECTORY_PREFIX}session-file-store-`));
    const fileStoreFactory = require('session-file-store') as (
      session: unknown,
    ) => new (
      options: object,
    ) => unknown;
    const FileStore = fileStoreFactory(require('express-session'));
    const store = new FileStore({ path, logFn: () => {}, reapInterval: -1 });
    return peerApp(store, () => rm(path, { recursive: true, force: true }));
  },
};

export const groups: BenchGroup[] = [
  {
    title: 'file',
    keepsake: 'keepsake-file',
    peer: 'session-file-store',
    countingStore: async () => ({
      port: null,
      appFiles: new RegExp(DIRECTORY_PREFIX),
      settleMs: 50,
      stop: async () => {},
    }),
  },
];

/** Creates `count` session files, `expiredShare` of them last modified two hours ago. */
async function fillDirectory(directory: string, count: number, expiredShare: number) {
  const past = new Date(Date.now() - 2 * 3600 * 1000);
  const payload = JSON.stringify({ __ci_last_regenerate: 1, count: 1 });
  const expiredEvery = Math.round(1 / expiredShare);
  const parallel = 64;
  for (let start = 0; start < count; start += parallel) {
    await Promise.all(
      Array.from({ length: Math.min(parallel, count - start) }, async (_, offset) => {
        // CodeIgniter's file names: the cookie name, then a 32-hex-digit session ID.
        const path = join(directory, `ci_session${randomBytes(16).toString('hex')}`);
        await writeFile(path, payload, { mode: 0o600 });
        if ((start + offset) % expiredEvery === 0) await utimes(path, past, past);
      }),
    );
  }
}

export async function extras(): Promise<string[]> {
  const directory = await mkdtemp(join(tmpdir(), 'keepsake-bench-gc-'));
  try {
    const savePath = join(directory, 'sessions');
    await mkdir(savePath, { mode: 0o700 });
    await fillDirectory(savePath, settings.gcFiles, GC_EXPIRED_SHARE);
    const manager = createSessionManager({ savePath, expiration: 3600, gcProbability: 0 });
    await manager.ready();
    const delay = monitorEventLoopDelay({ resolution: 5 });
    // A second probe that sees stalls directly, independent of the histogram's sampling.
    let longestGapMs = 0;
    let last = performance.now();
    const probe = setInterval(() => {
      const now = performance.now();
      longestGapMs = Math.max(longestGapMs, now - last - 5);
      last = now;
    }, 5);
    delay.enable();
    const started = performance.now();
    const removed = await manager.collectGarbage();
    const tookMs = performance.now() - started;
    delay.disable();
    clearInterval(probe);
    await manager.shutdown();
    const stallMs = Math.max(delay.max / 1e6, longestGapMs);
    const files = settings.gcFiles.toLocaleString('en-US');
    return [
      `**File GC** of ${files} session files (${GC_EXPIRED_SHARE * 100} % expired): ${(tookMs / 1000).toFixed(2)} s, ` +
        `${removed.toLocaleString('en-US')} removed; longest event-loop stall ${stallMs.toFixed(1)} ms ` +
        `(target ≤ ${STALL_TARGET_MS} ms: ${stallMs <= STALL_TARGET_MS ? 'met' : 'NOT met'}).`,
    ];
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}
