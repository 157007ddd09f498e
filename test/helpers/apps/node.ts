import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { type SessionRequest, withSession } from '../../../src/adapters/node.js';
import type { AppFactory } from './types.js';
import { forwardedHttps, isReadOnly, pathOf, queryOf, urlOf } from './types.js';

/** Plain node:http with `withSession` (its own error answers: 503 for the session, 500 otherwise). */
export const nodeApp: AppFactory = {
  framework: 'node:http',
  async start(options, routes) {
    const host = options.host ?? '127.0.0.1';
    const listener = withSession(
      {
        ...options.session,
        readOnly: (request) => isReadOnly(options, request.url),
        ...(options.trustProxy
          ? {
              isSecure: (request) =>
                forwardedHttps(request.headers['x-forwarded-proto'] as string | undefined),
            }
          : {}),
      },
      async (request: SessionRequest, response) => {
        const route = routes[pathOf(request.url)];
        if (route === undefined) {
          response.statusCode = 404;
          response.end();
          return;
        }
        const body = await route({
          session: request.session,
          query: queryOf(request.url),
          setCookie: (value) => response.appendHeader('Set-Cookie', value),
          setHeader: (name, value) => response.setHeader(name, value),
        });
        const text = typeof body === 'string';
        response.setHeader('Content-Type', text ? 'text/plain' : 'application/json');
        response.end(text ? body : JSON.stringify(body));
      },
    );
    const server =
      options.tls === undefined ? createServer(listener) : createTlsServer(options.tls, listener);
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    return {
      url: urlOf(host, (server.address() as AddressInfo).port, options.tls !== undefined),
      manager: listener.manager,
      async close() {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await listener.manager.shutdown();
      },
    };
  },
};
