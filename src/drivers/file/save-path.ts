import { constants } from 'node:fs';
import { access, mkdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { SessionConfigError } from '../../errors.js';
import type { SessionLogger } from '../../log.js';

/** Where sessions go when savePath is not set: private to this user, under the OS temp directory. */
export function defaultSavePath(): string {
  return join(tmpdir(), 'keepsake-sessions');
}

function notADirectory(path: string, cause?: unknown): SessionConfigError {
  return new SessionConfigError(
    'savePath',
    `Configured save path "${path}" is not a directory, does not exist or cannot be created. ` +
      `Create it (mkdir -p "${path}" && chmod 0700 "${path}") or set savePath to a directory this process may create.`,
    { cause },
  );
}

/**
 * Turns the savePath option into the session directory: creates it (0700) when missing, and fails
 * with CodeIgniter's messages when it cannot be a directory or cannot be written. Warns when other
 * users may read it, because whoever reads a session file can take over that session.
 */
export async function prepareSaveDirectory(
  savePath: string,
  logger: SessionLogger,
): Promise<string> {
  const isDefault = savePath === '';
  if (!isDefault && !isAbsolute(savePath)) {
    throw new SessionConfigError(
      'savePath',
      `the file driver needs an absolute directory, got ${JSON.stringify(savePath)}; ` +
        `use e.g. path.resolve(${JSON.stringify(savePath)}).`,
    );
  }
  // resolve() also drops trailing separators, so file names join cleanly.
  const directory = isDefault ? defaultSavePath() : resolve(savePath);
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
      'savePath',
      `Configured save path "${directory}" is not writable by the Node process. ` +
        'Give the user running Node ownership of it (chown) or choose another savePath.',
      { cause: error },
    );
  }
  const uid = process.getuid?.();
  if (uid !== undefined && info.uid !== uid) {
    const message = `Configured save path "${directory}" belongs to user ${info.uid}, not to this process (user ${uid}); that user can read every session.`;
    // A shared temp directory is where someone else could have prepared the default path for us.
    if (isDefault) {
      throw new SessionConfigError('savePath', `${message} Set savePath to a directory you own.`);
    }
    logger.warn(`keepsake: ${message}`);
  }
  if ((info.mode & 0o077) !== 0) {
    logger.warn(
      `keepsake: the session directory "${directory}" is accessible to other users (mode ${(info.mode & 0o777).toString(8)}); ` +
        `anyone who can read it can steal sessions. Run chmod 0700 "${directory}".`,
    );
  }
  return directory;
}
