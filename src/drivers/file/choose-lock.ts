import { SessionConfigError } from '../../errors.js';
import type { SessionLogger } from '../../log.js';
import { FlockMechanism, loadFsExt } from './flock.js';
import type { FileLockKind, FileLockMechanism } from './lock.js';
import { MkdirMechanism } from './mkdir-lock.js';

/** The `lock` option: flock when the fs-ext addon loads (else the mkdir fallback), or one forced. */
export type FileLockChoice = FileLockKind | 'auto';

export const FILE_LOCK_CHOICES: readonly FileLockChoice[] = ['auto', 'flock', 'mkdir'];

/**
 * The lock mechanism for a choice. Loading the native addon is I/O, so this runs when the driver
 * opens: 'flock' without the addon fails then, and 'auto' falls back to mkdir with one warning.
 */
export async function chooseLockMechanism(
  choice: FileLockChoice,
  lockTtlMs: number,
  logger: SessionLogger,
): Promise<FileLockMechanism> {
  if (choice === 'mkdir') return new MkdirMechanism(lockTtlMs, logger);
  const addon = await loadFsExt();
  if (addon !== null) return new FlockMechanism(addon);
  if (choice === 'flock') {
    throw new SessionConfigError(
      'lock',
      'the file driver was asked to lock with flock, but the optional "fs-ext" addon is not installed or did not build; ' +
        "install it (npm install fs-ext, which needs a C++ toolchain) or let the driver fall back to mkdir locks (lock: 'auto').",
    );
  }
  logger.warn(
    'keepsake: the optional "fs-ext" addon is not available, so the file driver locks with mkdir and a heartbeat: ' +
      `a crashed process's sessions stay locked for up to lockTtl (${lockTtlMs} ms). Install fs-ext for flock.`,
  );
  return new MkdirMechanism(lockTtlMs, logger);
}
