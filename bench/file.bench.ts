/**
 * The file driver vs session-file-store (express-session + FileStore), each in its own temp
 * directory. extras() measures GC of 100 000 session files (10 % expired) in this process: how long
 * it takes and the longest event-loop stall meanwhile.
 */

import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { RequestHandler } from 'express';
import { session } from 'keepsake/express';
import { FileHandler } from '../src/handlers/file.js';
import { createSessionId } from '../src/id.js';
import { openHarness } from '../src/testing/conformance.js';
import { expressSession, keepsakeCounter, peerCounter } from './array.bench.js';
import type { BenchApps, BenchGroup } from './harness.js';

const require = createRequire(import.meta.url);

const GC_FILES = Number(process.env.BENCH_GC_FILES ?? 100_000);
const GC_EXPIRED_SHARE = 0.1;
const STALL_TARGET_MS = 50;

export const apps: BenchApps = {
  'keepsake-file': async () => {
    const savePath = await mkdtemp(join(tmpdir(), 'keepsake-bench-file-'));
    const middleware = session({ savePath, gcProbability: 0 });
    await middleware.manager.ready();
    return {
      middleware: middleware as unknown as RequestHandler,
      ...keepsakeCounter,
      close: async () => {
        await middleware.manager.shutdown();
        await rm(savePath, { recursive: true, force: true });
      },
    };
  },
  'session-file-store': async () => {
    const path = await mkdtemp(join(tmpdir(), 'keepsake-bench-session-file-store-'));
    const fileStoreFactory = require('session-file-store') as (
      session: unknown,
    ) => new (
      options: object,
    ) => unknown;
    const FileStore = fileStoreFactory(require('express-session'));
    const store = new FileStore({ path, logFn: () => {}, reapInterval: -1 });
    return {
      middleware: expressSession(store),
      ...peerCounter,
      close: () => rm(path, { recursive: true, force: true }),
    };
  },
};

export const groups: BenchGroup[] = [
  { title: 'file', keepsake: 'keepsake-file', peer: 'session-file-store' },
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
        const path = join(directory, `ci_session${createSessionId()}`);
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
    await fillDirectory(savePath, GC_FILES, GC_EXPIRED_SHARE);
    const handler = new FileHandler();
    await openHarness(
      { createHandler: () => handler, savePath, expiry: 'store' },
      { lifetimeSeconds: 3600 },
    );
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
    const removed = await handler.gc(3600);
    const tookMs = performance.now() - started;
    delay.disable();
    clearInterval(probe);
    await handler.shutdown();
    const stallMs = Math.max(delay.max / 1e6, longestGapMs);
    const files = GC_FILES.toLocaleString('en-US');
    return [
      `**File GC** of ${files} session files (${GC_EXPIRED_SHARE * 100} % expired): ${(tookMs / 1000).toFixed(2)} s, ` +
        `${removed.toLocaleString('en-US')} removed; longest event-loop stall ${stallMs.toFixed(1)} ms ` +
        `(target ≤ ${STALL_TARGET_MS} ms: ${stallMs <= STALL_TARGET_MS ? 'met' : 'NOT met'}).`,
    ];
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}
