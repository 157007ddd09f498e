/**
 * The bench server: one app (keepsake, a peer library or bare) from a bench file, serving the
 * counter route `GET /` (read the session's counter, add one, answer it) on a free port.
 */
import { pathToFileURL } from 'node:url';
import express from 'express';
import type { BenchApp, BenchModule } from './harness.js';

const modulePath = process.env.BENCH_MODULE ?? '';
const appName = process.env.BENCH_APP ?? 'bare';

const bare: BenchApp = { middleware: null, read: () => 0, write: () => {} };

const benchModule = (await import(pathToFileURL(modulePath).href)) as BenchModule;
const factory = benchModule.apps[appName];
if (appName !== 'bare' && factory === undefined) {
  throw new Error(`bench: ${modulePath} has no app "${appName}"`);
}
const made = factory === undefined ? bare : await factory();

const app = express();
app.set('etag', false);
if (made.middleware !== null) app.use(made.middleware);
app.get('/', async (request, response, next) => {
  try {
    const count = (await made.read(request)) + 1;
    made.write(request, count);
    response.json({ count });
  } catch (error) {
    next(error);
  }
});

const server = app.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : 0}\n`);
});
process.once('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => {
    void Promise.resolve(made.close?.()).finally(() => process.exit(0));
  });
});
