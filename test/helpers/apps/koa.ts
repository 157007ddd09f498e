import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { session } from '../../../src/adapters/koa.js';
import type { AppFactory } from './types.js';
import { isReadOnly, queryOf, urlOf } from './types.js';

/** Koa with keepsake first in the chain; Koa's own error response (status from `err.status`). */
export const koaApp: AppFactory = {
  framework: 'Koa',
  async start(options, routes) {
    const host = options.host ?? '127.0.0.1';
    const app = new Koa();
    app.silent = true;
    app.proxy = options.trustProxy ?? false;
    const middleware = session({
      ...options.session,
      readOnly: (ctx) => isReadOnly(options, ctx.url),
    });
    app.use(middleware);
    app.use(async (ctx) => {
      const route = routes[ctx.path];
      if (route === undefined) return;
      const body = await route({
        session: ctx.session,
        query: queryOf(ctx.url),
        setCookie: (value) => ctx.append('Set-Cookie', value),
        setHeader: (name, value) => ctx.set(name, value),
      });
      ctx.body = body;
    });
    const server =
      options.tls === undefined
        ? app.listen(0, host)
        : createServer(options.tls, app.callback()).listen(0, host);
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
