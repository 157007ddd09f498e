/**
 * Child process for the "not writable" test: opens a file-driver manager on the savePath given as
 * argv[2] (run as an unprivileged user, since root may write anywhere) and prints the error message,
 * or "opened".
 */
import { SessionManager } from '../../../src/manager.js';

const manager = new SessionManager({ driver: 'file', savePath: process.argv[2] ?? '' });
try {
  await manager.ready();
  process.stdout.write('opened\n');
} catch (error) {
  process.stdout.write(`${error instanceof Error ? error.message : String(error)}\n`);
}
