/**
 * The bench server: one app (keepsake, a peer library or bare) from a bench file, serving every
 * workload's route (bench/workloads.ts) on a free port. BENCH_STORE_PORT points the app at a
 * private store server (the counted phase) instead of the shared one.
 */
import { pathToFileURL } from 'node:url';
import { expressApp } from './express-app.js';
import type { BenchApp, BenchModule } from './harness.js';

const modulePath = process.env.BENCH_MODULE ?? '';
const appName = process.env.BENCH_APP ?? 'bare';
const storePort = process.env.BENCH_STORE_PORT;

const bare: BenchApp = { middleware: null, session: null };

const benchModule = (await import(pathToFileURL(modulePath).href)) as BenchModule;
const factory = benchModule.apps[appName];
if (appName !== 'bare' && factory === undefined) {
  throw new Error(`bench: ${modulePath} has no app "${appName}"`);
}
const made =
  factory === undefined
    ? bare
    : await factory(storePort === undefined ? {} : { port: Number(storePort) });

const server = expressApp(made).listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : 0}\n`);
});
process.once('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => {
    // Requests the load generator cut off at the end of a run still save their sessions.
    setTimeout(() => {
      void Promise.resolve(made.close?.()).finally(() => process.exit(0));
    }, 250);
  });
});
