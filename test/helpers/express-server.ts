import type { AddressInfo } from 'node:net';
import express, { type Express } from 'express';
import { type SessionMiddlewareOptions, session } from '../../src/adapters/express.js';

export interface RunningApp {
  readonly url: string;
  readonly app: Express;
  close(): Promise<void>;
}

/**
 * An Express app with keepsake mounted, listening on `host` (default 127.0.0.1). `routes` adds the
 * app's handlers; an error handler answers `status: message` like a production app would.
 */
export async function startExpressApp(
  options: SessionMiddlewareOptions,
  routes: (app: Express) => void,
  host = '127.0.0.1',
): Promise<RunningApp> {
  const app = express();
  const middleware = session(options);
  app.use(middleware);
  routes(app);
  app.use(
    (
      error: Error & { status?: number },
      _request: express.Request,
      response: express.Response,
      _next: express.NextFunction,
    ) => {
      response
        .status(error.status ?? 500)
        .type('text')
        .send(error.message);
    },
  );
  const server = app.listen(0, host);
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}`,
    app,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await middleware.manager.shutdown();
    },
  };
}
