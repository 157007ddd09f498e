/**
 * The file driver in CodeIgniter's layout, sharing one session directory with a real CodeIgniter
 * 4.1.3 app (FileHandler): see shared-sessions.ts for the scenarios.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { file } from '../../src/drivers/file.js';
import { codeIgniterSkip } from './ci-app.js';
import { sharedSessionSuite } from './shared-sessions.js';

sharedSessionSuite('file', await codeIgniterSkip('file'), async () => {
  const savePath = await mkdtemp(join(tmpdir(), 'keepsake-ci-shared-'));
  const path = (id: string) => join(savePath, `ci_session${id}`);
  return {
    codeigniter: { driver: 'file', savePath },
    driver: () => file({ directory: savePath, layout: 'codeigniter' }),
    read: (id) =>
      readFile(path(id)).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return null;
        throw error;
      }),
    write: (id, data) => writeFile(path(id), data),
    cleanup: () => rm(savePath, { recursive: true, force: true }),
  };
});
