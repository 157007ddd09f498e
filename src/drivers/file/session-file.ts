import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { type FileHandle, open, rename, unlink } from 'node:fs/promises';
import { payloadOf } from '../payload-bytes.js';
import { errorCode } from './io-timeout.js';

/** What a session file holds: its text, or why it cannot be a payload. */
export type SessionFileContent = { readonly text: string } | { readonly unreadable: string };

/** The content of an open session file whose stat is `stats` (the whole file, read from offset 0). */
export async function readContent(handle: FileHandle, stats: Stats): Promise<SessionFileContent> {
  const text = payloadOf(await readBytes(handle, stats));
  return text === null ? { unreadable: 'the session file is not valid UTF-8' } : { text };
}

/** The bytes of an open session file whose stat is `stats` (the whole file, read from offset 0). */
export async function readBytes(handle: FileHandle, stats: Stats): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(stats.size);
  let filled = 0;
  while (filled < buffer.length) {
    const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buffer.subarray(0, filled);
}

/**
 * Rewrites the locked file in place (truncate, then write from offset 0), as CodeIgniter's
 * FileHandler does: a PHP request blocked in flock() on this file must find the new data in it
 * when it wakes, which a rename over the path would hide from it. The lock keeps readers out
 * meanwhile; a crash mid-write can leave the file torn, as in CodeIgniter.
 */
export async function rewriteInPlace(
  handle: FileHandle,
  data: Buffer,
  mtime: Date | null,
): Promise<void> {
  await handle.truncate(0);
  let written = 0;
  while (written < data.length) {
    const { bytesWritten } = await handle.write(data, written, data.length - written, written);
    written += bytesWritten;
  }
  if (mtime !== null) await handle.utimes(mtime, mtime);
}

/**
 * Opens `path` read-only and hands the file and its stat to `use`; undefined when the file does not
 * exist. The file is closed afterwards whatever happens.
 */
export async function withSessionFile<T>(
  path: string,
  use: (handle: FileHandle, stats: Stats) => Promise<T>,
): Promise<T | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined;
    throw error;
  }
  try {
    return await use(handle, await handle.stat());
  } finally {
    await handle.close();
  }
}

/**
 * Replaces the file at `path` with `data` by writing a temporary file beside it and renaming it
 * over the old one: rename is atomic, so every reader, and the file left after a crash at any
 * moment, holds either the old or the new payload in full. `mtime` sets the modification time
 * (see expiry.ts; null leaves the kernel's stamp). There is no fsync: a process crash
 * loses nothing that was renamed, and a power loss at worst loses the latest writes.
 */
export async function replaceAtomically(
  path: string,
  data: string,
  mtime: Date | null,
): Promise<void> {
  const temporary = `${path}.${randomBytes(8).toString('hex')}.tmp`;
  const handle = await open(temporary, 'wx', 0o600);
  try {
    try {
      await handle.writeFile(data, 'utf8');
      if (mtime !== null) await handle.utimes(mtime, mtime);
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => {});
    throw error;
  }
}
