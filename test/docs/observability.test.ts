/**
 * docs/observability.md's prom-client code, exactly as printed, counts what really happens: lock
 * waits and timeouts, store errors, sessions created, regenerated and destroyed, and GC passes.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SessionManager } from '../../src/manager.js';
import { requestFor } from '../../src/testing/request-for.js';
import { RecordingDriver } from '../helpers/recording-driver.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const page = await readFile(join(root, 'docs/observability.md'), 'utf8');
const code = [...page.matchAll(/```ts\n([\s\S]*?)```/g)]
  .map((match) => match[1] ?? '')
  .find((block) => block.includes('prom-client'));
if (code === undefined) throw new Error('docs/observability.md shows no prom-client code');

// Inside the repository, so that the page's imports resolve to this project's node_modules.
await mkdir(join(root, '.tmp'), { recursive: true });
const directory = await mkdtemp(join(root, '.tmp', 'observability-'));
after(() => rm(directory, { recursive: true, force: true }));
await writeFile(join(directory, 'metrics.ts'), code);
const { registry } = (await import(pathToFileURL(join(directory, 'metrics.ts')).href)) as {
  registry: { getSingleMetricAsString(name: string): Promise<string> };
};

const metric = (name: string) => registry.getSingleMetricAsString(name);

describe('the metrics of docs/observability.md', () => {
  it('count lock waits and timeouts, store errors, session events and GC', async () => {
    const recording = new RecordingDriver();
    const manager = new SessionManager({
      driver: recording.driver,
      lockWait: 50,
      gcProbability: 0,
    });
    const visit = async (
      id: string | undefined,
      work: (s: Awaited<ReturnType<typeof manager.start>>) => unknown,
    ) => {
      const session = await manager.start(requestFor(id));
      await work(session);
      manager.setCookies(session);
      await manager.commit(session);
      return session;
    };
    const created = await visit(undefined, (s) => s.set('user', 'ada'));
    const regenerated = await visit(created.id, (s) => s.regenerate(true));
    const holder = await manager.start(requestFor(regenerated.id));
    await assert.rejects(manager.start(requestFor(regenerated.id)));
    await manager.commit(holder);
    recording.failReads = new Error('connect ECONNREFUSED');
    await assert.rejects(manager.start(requestFor(regenerated.id)));
    recording.failReads = undefined;
    await visit(regenerated.id, (s) => s.destroy());
    await manager.collectGarbage();

    assert.match(
      await metric('keepsake_lock_wait_seconds'),
      /keepsake_lock_wait_seconds_count\{driver="array"\} [3-9]/,
    );
    assert.match(await metric('keepsake_lock_timeouts_total'), /\{driver="array"\} 1$/m);
    assert.match(
      await metric('keepsake_store_errors_total'),
      /\{driver="array",operation="lock and read"\} 1$/m,
    );
    const sessions = await metric('keepsake_sessions_total');
    assert.match(sessions, /\{driver="array",event="created"\} 1$/m);
    assert.match(sessions, /\{driver="array",event="regenerated"\} 1$/m);
    assert.match(sessions, /\{driver="array",event="destroyed"\} 1$/m);
    assert.match(
      await metric('keepsake_gc_removed_total'),
      /keepsake_gc_removed_total\{driver="array"\} 0/,
    );
    await manager.shutdown();
  });
});
