import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { withSession } from '../../../src/adapters/fetch.js';
import type { AppFactory } from './types.js';
import { errorMessage, forwardedHttps, isReadOnly, pathOf, urlOf } from './types.js';

/**
 * A bare Fetch-API handler wrapped by `withSession`, served on node:http by @hono/node-server (the
 * server answers 500 when the handler throws, as Deno and Bun do).
 */
export const fetchApp: AppFactory = {
  framework: 'Fetch',
  async start(options, routes) {
    const host = options.host ?? '127.0.0.1';
    const handler = withSession(
      {
        ...options.session,
        readOnly: (request) => isReadOnly(options, request.url),
        ...(options.trustProxy
          ? {
              isSecure: (request) =>
                request.url.startsWith('https:') ||
                forwardedHttps(request.headers.get('x-forwarded-proto')),
            }
          : {}),
      },
      async (request, session) => {
        const url = new URL(request.url);
        const route = routes[pathOf(request.url)];
        if (route === undefined) return new Response(null, { status: 404 });
        const headers = new Headers();
        const body = await route({
          session,
          query: url.searchParams,
          setCookie: (value) => headers.append('Set-Cookie', value),
          setHeader: (name, value) => headers.set(name, value),
        });
        const text = typeof body === 'string';
        headers.set('Content-Type', text ? 'text/plain' : 'application/json');
        return new Response(text ? body : JSON.stringify(body), { headers });
      },
    );
    const server = serve({
      fetch: async (request, env) => {
        try {
          return await handler(request, env);
        } catch (error) {
          return new Response(errorMessage(error), { status: 500 });
        }
      },
      port: 0,
      hostname: host,
      ...(options.tls === undefined ? {} : { createServer, serverOptions: options.tls }),
    });
    await new Promise<void>((resolve) => server.once('listening', resolve));
    return {
      url: urlOf(host, (server.address() as AddressInfo).port, options.tls !== undefined),
      manager: handler.manager,
      async close() {
        if ('closeAllConnections' in server) server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await handler.manager.shutdown();
      },
    };
  },
};
