import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { session } from '../../../src/adapters/hono.js';
import type { AppFactory } from './types.js';
import { errorMessage, forwardedHttps, isReadOnly, queryOf, urlOf } from './types.js';

/** Hono on @hono/node-server, with an onError that answers HTTPExceptions as they are. */
export const honoApp: AppFactory = {
  framework: 'Hono',
  async start(options, routes) {
    const host = options.host ?? '127.0.0.1';
    const app = new Hono();
    const middleware = session({
      ...options.session,
      readOnly: (c) => isReadOnly(options, c.req.url),
      ...(options.trustProxy
        ? {
            isSecure: (c) =>
              c.req.url.startsWith('https:') || forwardedHttps(c.req.header('x-forwarded-proto')),
          }
        : {}),
    });
    app.use(middleware);
    for (const [path, route] of Object.entries(routes)) {
      app.get(path, async (c) => {
        const body = await route({
          session: c.get('session'),
          query: queryOf(c.req.url),
          setCookie: (value) => c.header('Set-Cookie', value, { append: true }),
          setHeader: (name, value) => c.header(name, value),
        });
        return typeof body === 'string' ? c.text(body) : c.json(body);
      });
    }
    app.onError((error, c) =>
      error instanceof HTTPException ? error.getResponse() : c.text(errorMessage(error), 500),
    );
    const server = serve({
      fetch: app.fetch,
      port: 0,
      hostname: host,
      ...(options.tls === undefined ? {} : { createServer, serverOptions: options.tls }),
    });
    await new Promise<void>((resolve) => server.once('listening', resolve));
    return {
      url: urlOf(host, (server.address() as AddressInfo).port, options.tls !== undefined),
      manager: middleware.manager,
      async close() {
        if ('closeAllConnections' in server) server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await middleware.manager.shutdown();
      },
    };
  },
};
