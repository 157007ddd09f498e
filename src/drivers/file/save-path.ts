import { constants } from 'node:fs';
import { access, mkdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { SessionConfigError } from '../../errors.js';
import type { SessionLogger } from '../../log.js';

/** Where sessions go when no directory is configured: private to this user, under the OS temp directory. */
export function defaultSavePath(): string {
  return join(tmpdir(), 'keepsake-sessions');
}

/** The session directory a driver was configured with. */
export interface SessionDirectory {
  /** Absolute, without a trailing separator. */
  readonly path: string;
  /** No directory was given: the default under the shared temp directory, which we must own. */
  readonly isDefault: boolean;
}

function notADirectory(path: string, cause?: unknown): SessionConfigError {
  return new SessionConfigError(
    'directory',
    `Configured save path "${path}" is not a directory, does not exist or cannot be created. ` +
      `Create it (mkdir -p "${path}" && chmod 0700 "${path}") or configure a directory this process may create.`,
    { cause },
  );
}

/** Checks the directory option without I/O, when the driver is created; a relative path is an error. */
export function resolveSessionDirectory(directory: unknown): SessionDirectory {
  if (directory === undefined) return { path: defaultSavePath(), isDefault: true };
  if (typeof directory !== 'string' || !isAbsolute(directory)) {
    throw new SessionConfigError(
      'directory',
      `the file driver needs an absolute directory, got ${JSON.stringify(directory)}` +
        (typeof directory === 'string' && directory !== ''
          ? `; use e.g. path.resolve(${JSON.stringify(directory)}).`
          : '.'),
    );
  }
  // resolve() also drops trailing separators, so file names join cleanly.
  return { path: resolve(directory), isDefault: false };
}

/**
 * Makes the session directory ready when the driver opens: creates it (0700) when missing, and fails
 * with CodeIgniter's messages when it cannot be a directory or cannot be written. Warns when other
 * users may read it, because whoever reads a session file can take over that session.
 */
export async function prepareSessionDirectory(
  { path: directory, isDefault }: SessionDirectory,
  logger: SessionLogger,
): Promise<void> {
  try {
    await mkdir(directory, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw notADirectory(directory, error);
  }
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(directory);
  } catch (error) {
    throw notADirectory(directory, error);
  }
  if (!info.isDirectory()) throw notADirectory(directory);
  try {
    await access(directory, constants.W_OK | constants.X_OK);
  } catch (error) {
    throw new SessionConfigError(
      'directory',
      `Configured save path "${directory}" is not writable by the Node process. ` +
        'Give the user running Node ownership of it (chown) or choose another directory.',
      { cause: error },
    );
  }
  const uid = process.getuid?.();
  if (uid !== undefined && info.uid !== uid) {
    const message = `Configured save path "${directory}" belongs to user ${info.uid}, not to this process (user ${uid}); that user can read every session.`;
    // A shared temp directory is where someone else could have prepared the default path for us.
    if (isDefault) {
      throw new SessionConfigError('directory', `${message} Configure a directory you own.`);
    }
    logger.warn(`keepsake: ${message}`);
  }
  if ((info.mode & 0o077) !== 0) {
    logger.warn(
      `keepsake: the session directory "${directory}" is accessible to other users (mode ${(info.mode & 0o777).toString(8)}); ` +
        `anyone who can read it can steal sessions. Run chmod 0700 "${directory}".`,
    );
  }
}
