import { AdapterKit, type AdapterOptions, type FailureAnswer } from '../adapter-kit.js';
import { SessionError } from '../errors.js';
import type { AppSessionData, Session, SessionData } from '../index.js';
import type { SessionManager } from '../manager.js';

/**
 * What the server passed next to the request: Deno's `info`, Bun's `server`, `@hono/node-server`'s
 * `{ incoming }`, a Workers `env`… Only used to find the client IP.
 */
export type ServerContext = unknown;

/** Options of `withSession`: the session configuration plus per-request choices. */
export interface FetchSessionOptions extends AdapterOptions<Request> {
  /**
   * The client IP used by `matchIP`. Default: what the server reports in its second argument —
   * Deno's `info.remoteAddr.hostname`, Bun's `server.requestIP(request).address`,
   * `@hono/node-server`'s `incoming.socket.remoteAddress` — else ''. Forwarded headers are never
   * trusted by default; behind a proxy you trust, read them here.
   */
  ip?: (request: Request, context: ServerContext) => string;
  /**
   * Whether the request arrived over HTTPS, for `cookie.secure: 'auto'`. Default: the scheme of
   * `request.url`. Behind a proxy that ends TLS, the URL says http: read the proxy's header here,
   * and only if every request comes through that proxy.
   */
  isSecure?: (request: Request, context: ServerContext) => boolean;
}

/** A Fetch-API handler with its session. */
export type SessionFetchHandler<Data extends SessionData = AppSessionData> = (
  request: Request,
  session: Session<Data>,
) => Response | Promise<Response>;

/** The wrapped handler, to give to `Deno.serve`, `Bun.serve({ fetch })`, a Worker, etc. */
export type FetchHandler = ((request: Request, context?: ServerContext) => Promise<Response>) & {
  readonly manager: SessionManager;
};

interface KnownContexts {
  remoteAddr?: { hostname?: unknown };
  requestIP?: (request: Request) => { address?: unknown } | null;
  incoming?: { socket?: { remoteAddress?: unknown } };
}

function serverIp(request: Request, context: ServerContext): string {
  if (typeof context !== 'object' || context === null) return '';
  const known = context as KnownContexts;
  const candidate =
    known.remoteAddr?.hostname ??
    (typeof known.requestIP === 'function' ? known.requestIP(request)?.address : undefined) ??
    known.incoming?.socket?.remoteAddress;
  return typeof candidate === 'string' ? candidate : '';
}

function urlIsHttps(request: Request): boolean {
  return request.url.startsWith('https:');
}

function headersHave(headers: Headers, name: string): boolean {
  return headers.has(name);
}

function responseOf(answer: FailureAnswer): Response {
  return new Response(answer.body, { status: answer.status, headers: answer.headers });
}

/**
 * Wraps a Fetch-API handler: `export default { fetch: withSession(config, (request, session) => …) }`.
 * The session is saved before the wrapped handler's promise resolves, so the response never leaves
 * before the data is stored; Set-Cookie, and the `cacheLimiter` headers unless the handler set its
 * own Cache-Control, are added to the handler's own headers. A lock timeout or
 * store failure answers 503; an error of the handler is rethrown (after the lock is released) for
 * the server to answer.
 */
export function withSession<Data extends SessionData = AppSessionData>(
  options: FetchSessionOptions,
  handler: SessionFetchHandler<Data>,
): FetchHandler {
  const { ip = serverIp, isSecure = urlIsHttps, ...rest } = options;
  const kit = new AdapterKit<Request>(rest);
  const wrapped = async (request: Request, context?: ServerContext): Promise<Response> => {
    let started: Session<Data>;
    try {
      started = await kit.start<Data>(request, {
        cookieHeader: request.headers.get('cookie') ?? undefined,
        ip: () => ip(request, context),
        requestedWith: request.headers.get('x-requested-with'),
        secure: () => isSecure(request, context),
      });
    } catch (error) {
      if (error instanceof SessionError) return responseOf(kit.failure(error));
      throw error;
    }
    let response: Response;
    try {
      response = await handler(request, started);
    } catch (error) {
      await kit.finishQuietly(started as Session);
      throw error;
    }
    let cookies: string[];
    try {
      cookies = await kit.finish(started as Session);
    } catch (error) {
      kit.report(error);
      if (error instanceof SessionError) return responseOf(kit.failure(error));
      throw error;
    }
    const cacheHeaders = kit.cacheHeaders(started as Session, response.headers, headersHave);
    if (cookies.length === 0 && cacheHeaders.length === 0) return response;
    // Headers of a fetched or Response.redirect() response are immutable: answer a copy.
    const headers = new Headers(response.headers);
    for (const cookie of cookies) headers.append('Set-Cookie', cookie);
    for (const [name, value] of cacheHeaders) headers.set(name, value);
    return new Response(response.body, {
      status: response.status,
      statusText: response.statusText,
      headers,
    });
  };
  return Object.assign(wrapped, { manager: kit.manager });
}

export type { SessionManager } from '../manager.js';
