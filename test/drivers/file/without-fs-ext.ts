/**
 * Child process for the missing-addon tests: hides the optional fs-ext addon (as when it is not
 * installed or did not build), opens the file driver with the lock choice argv[3] on the directory
 * argv[2], takes one session lock, and prints one JSON line: the error of the open, or the warnings
 * logged, the directory entries the lock made, and whether the store renews its locks.
 */
import { readdir } from 'node:fs/promises';
import { register } from 'node:module';

const hideFsExt = `
export async function resolve(specifier, context, next) {
  if (specifier === 'fs-ext') {
    const error = new Error("Cannot find package 'fs-ext'");
    error.code = 'ERR_MODULE_NOT_FOUND';
    throw error;
  }
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hideFsExt)}`);

const { file } = await import('../../../src/drivers/file.js');
const { openStore } = await import('../../../src/testing/conformance.js');
const { lock, newKey } = await import('../../../src/testing/conformance-store.js');

const [directory = '', choice = 'auto'] = process.argv.slice(2);
try {
  const { store, warnings } = await openStore({
    driver: () => file({ directory, lock: choice === 'flock' ? 'flock' : 'auto' }),
    expiry: 'real',
  });
  const key = newKey();
  const held = await lock(store, key);
  const entries = await readdir(directory);
  await store.unlock(key, held.token, true);
  await store.close();
  const renews = typeof store.renewLock === 'function';
  process.stdout.write(`${JSON.stringify({ warnings, entries, renews })}\n`);
} catch (error) {
  process.stdout.write(
    `${JSON.stringify({ error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) })}\n`,
  );
}
