import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { session } from '../../../src/adapters/express.js';
import type { AppFactory } from './types.js';
import { isReadOnly, queryOf, urlOf } from './types.js';

/** Express 5 with keepsake mounted and an error handler answering `status: message`. */
export const expressApp: AppFactory = {
  framework: 'Express',
  async start(options, routes) {
    const host = options.host ?? '127.0.0.1';
    const app = express();
    if (options.trustProxy) app.set('trust proxy', 'loopback');
    const middleware = session({
      ...options.session,
      readOnly: (request) => isReadOnly(options, request.url),
    });
    app.use(middleware);
    for (const [path, route] of Object.entries(routes)) {
      app.get(path, async (request, response) => {
        const body = await route({
          session: request.session,
          query: queryOf(request.url),
          setCookie: (value) => response.append('Set-Cookie', value),
          setHeader: (name, value) => response.set(name, value),
        });
        if (typeof body === 'string') response.type('text').send(body);
        else response.json(body);
      });
    }
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
    const server =
      options.tls === undefined
        ? app.listen(0, host)
        : createServer(options.tls, app).listen(0, host);
    await new Promise<void>((resolve) => server.once('listening', resolve));
    return {
      url: urlOf(host, (server.address() as AddressInfo).port, options.tls !== undefined),
      manager: middleware.manager,
      async close() {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await middleware.manager.shutdown();
      },
    };
  },
};
