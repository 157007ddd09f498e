/**
 * A tiny Express app used by the multi-process, crash and fault tests: run as a child process with
 * the session config as JSON in KEEPSAKE_TEST_CONFIG (and a driver to build in KEEPSAKE_TEST_DRIVER,
 * see driver-spec.ts); it prints `listening <port>` when ready.
 *   GET /inc          read counter, wait KEEPSAKE_TEST_DELAY ms (to widen the race), write counter+1
 *   GET /slow-inc?ms  read counter, print `holding`, wait ms, write counter+1 (a request that stalls)
 *   GET /count        the counter (read-only: no lock)
 *   GET /hold?ms=N    takes the session lock and holds it N ms (for crash tests)
 *   GET /logout       destroys the session
 *   GET /login?user=U binds the session to user U (and counts from 0)
 *   GET /revoke-all?user=U  ends every session of user U (from any process)
 */
import express from 'express';
import { session } from '../../src/adapters/express.js';
import { type DriverSpec, driverOf } from './driver-spec.js';

const config = JSON.parse(process.env.KEEPSAKE_TEST_CONFIG ?? '{}') as Record<string, unknown>;
const driverSpec = process.env.KEEPSAKE_TEST_DRIVER;
const delayMs = Number(process.env.KEEPSAKE_TEST_DELAY ?? '0');
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const app = express();
const middleware = session({
  ...config,
  ...(driverSpec === undefined ? {} : { driver: driverOf(JSON.parse(driverSpec) as DriverSpec) }),
  readOnly: (request) => request.url === '/count',
});
app.use(middleware);
app.get('/inc', async (request, response) => {
  const current = Number(request.session.get('count') ?? 0);
  if (delayMs > 0) await pause(delayMs);
  request.session.set('count', current + 1);
  response.json({ count: current + 1 });
});
app.get('/slow-inc', async (request, response) => {
  const current = Number(request.session.get('count') ?? 0);
  process.stdout.write('holding\n');
  await pause(Number(request.query.ms ?? 1_000));
  request.session.set('count', current + 1);
  response.json({ count: current + 1 });
});
app.get('/count', (request, response) => {
  response.json({ count: Number(request.session.get('count') ?? 0) });
});
app.get('/hold', async (request, response) => {
  request.session.set('held', true);
  process.stdout.write('holding\n');
  await pause(Number(request.query.ms ?? 60_000));
  response.json({ held: true });
});
app.get('/login', (request, response) => {
  request.session.set('count', 0);
  request.session.bindUser(String(request.query.user));
  response.json({ count: 0 });
});
app.get('/revoke-all', async (request, response) => {
  response.json({ revoked: await middleware.manager.revokeAll(String(request.query.user)) });
});
app.get('/logout', async (request, response) => {
  await request.session.destroy();
  response.json({ loggedOut: true });
});

// As a deployed app does: the store answers before the server takes requests. A store that was
// just started (a private server on a loaded machine) may need a few tries.
for (let attempt = 1; ; attempt += 1) {
  try {
    await middleware.manager.ready();
    // Tests that read keepsake's log look only past this line, after any startup retries; keepsake
    // logs through process.emitWarning, which prints on a later tick, so let those lines out first.
    await new Promise((resolve) => setImmediate(resolve));
    process.stderr.write('counter-app: serving\n');
    break;
  } catch (error) {
    if (attempt === 20) throw error;
    await pause(250);
  }
}

const server = app.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  process.stdout.write(`listening ${port}\n`);
});
