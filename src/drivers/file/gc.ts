import type { Stats } from 'node:fs';
import { opendir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { SessionLogger } from '../../log.js';
import { errorCode, ignoringMissing, withinIoTimeout } from './io-timeout.js';
import type { FileLockMechanism } from './lock.js';
import type { SessionFileNames } from './names.js';

/** Directory entries handled between two yields to the event loop. */
const BATCH_SIZE = 256;
/** File operations in flight at once, so GC leaves most of libuv's four pool threads to requests. */
const PARALLEL_FILES = 2;

export interface GarbageCollection {
  readonly directory: string;
  readonly names: SessionFileNames;
  readonly locks: FileLockMechanism;
  /** Is a session file with this stat idle for too long? */
  isExpired(stats: Stats): boolean;
  /** Temporary files older than this (ms, real time, by mtime) were left by a crashed writer. */
  readonly temporaryMaxAgeMs: number;
  readonly ioTimeoutMs: number;
  readonly logger: SessionLogger;
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Deletes expired session files, a few at a time, yielding to the event loop after every batch so
 * requests keep flowing while a large directory is swept. Each file is deleted only under its lock
 * (a session in use is skipped, not waited for) and only if it is still expired once locked.
 * Also removes temporary files and lock directories that crashed processes left behind.
 */
export async function collectGarbage(gc: GarbageCollection): Promise<number> {
  const directory = await withinIoTimeout(
    opendir(gc.directory, { bufferSize: BATCH_SIZE }),
    gc.ioTimeoutMs,
    'listing the session directory',
    (late) => late.close(),
  );
  let removed = 0;
  let failures = 0;
  let firstFailure: unknown;
  const sweep = async (names: string[]) => {
    const results = await mapLimited(names, PARALLEL_FILES, (name) =>
      sweepEntry(gc, name).catch((error: unknown) => {
        failures += 1;
        firstFailure ??= error;
        return false;
      }),
    );
    removed += results.filter(Boolean).length;
    await yieldToEventLoop();
  };
  let batch: string[] = [];
  for await (const entry of directory) {
    batch.push(entry.name);
    if (batch.length === BATCH_SIZE) {
      await sweep(batch);
      batch = [];
    }
  }
  if (batch.length > 0) await sweep(batch);
  if (failures > 0) {
    gc.logger.warn(
      `keepsake: session GC could not check or remove ${failures} entries of ${gc.directory} (first error: ${firstFailure instanceof Error ? firstFailure.message : String(firstFailure)}).`,
    );
  }
  return removed;
}

/** True when the entry was a session file and was deleted. */
async function sweepEntry(gc: GarbageCollection, name: string): Promise<boolean> {
  const path = join(gc.directory, name);
  if (gc.names.session.test(name)) return removeExpiredSession(gc, path);
  if (gc.names.temporary.test(name)) {
    const info = await io(gc, ignoringMissing(stat(path)));
    if (info !== undefined && Date.now() - info.mtimeMs > gc.temporaryMaxAgeMs) {
      await io(gc, ignoringMissing(unlink(path)));
    }
    return false;
  }
  if (gc.names.lockDirectory.test(name)) await io(gc, gc.locks.removeLeftover(path));
  return false;
}

async function removeExpiredSession(gc: GarbageCollection, path: string): Promise<boolean> {
  const before = await io(gc, ignoringMissing(stat(path)));
  if (before === undefined || !gc.isExpired(before)) return false;
  const locked = await withinIoTimeout(
    gc.locks.tryLock(path, false),
    gc.ioTimeoutMs,
    'session GC',
    (late) => (late === null ? undefined : gc.locks.release(late)),
  );
  if (locked === null) return false;
  // The lock is released only once the last step under it has settled, even when that step timed
  // out: an unlink landing after another process took the lock could delete its new session.
  let lastStep: Promise<unknown> = Promise.resolve();
  const step = <T>(operation: Promise<T>): Promise<T> => {
    lastStep = operation;
    return io(gc, operation);
  };
  try {
    // Someone may have written it between our stat and our lock.
    const current = locked.stats ?? (await step(ignoringMissing(stat(path))));
    if (current === undefined || !gc.isExpired(current)) return false;
    await step(unlink(path));
    return true;
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return false;
    throw error;
  } finally {
    const release = () => gc.locks.release(locked);
    await io(gc, lastStep.then(release, release));
  }
}

function io<T>(gc: GarbageCollection, operation: Promise<T>): Promise<T> {
  return withinIoTimeout(operation, gc.ioTimeoutMs, 'session GC');
}

/** `map` with at most `limit` calls running at once, results in input order. */
async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  map: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next;
      next += 1;
      results[index] = await map(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
