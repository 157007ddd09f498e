import type { SessionConfig } from '../config.js';
import { SessionError } from '../errors.js';
import { SessionManager } from '../manager.js';
import type { AppSessionData, Session, SessionData } from '../session.js';

/**
 * What the server passed next to the request: Deno's `info`, Bun's `server`, `@hono/node-server`'s
 * `{ incoming }`, a Workers `env`… Only used to find the client IP.
 */
export type ServerContext = unknown;

/** Options of `withSession`: the session configuration plus per-request choices. */
export interface FetchSessionOptions extends SessionConfig {
  /** Requests whose session is read without a lock and cannot be changed (e.g. a polling route). */
  readOnly?: (request: Request) => boolean;
  /**
   * The client IP used by `matchIP`. Default: what the server reports in its second argument —
   * Deno's `info.remoteAddr.hostname`, Bun's `server.requestIP(request).address`,
   * `@hono/node-server`'s `incoming.socket.remoteAddress` — else ''. Forwarded headers are never
   * trusted by default; behind a proxy you trust, read them here.
   */
  ip?: (request: Request, context: ServerContext) => string;
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

/** The answer when the session cannot be started or saved: a 503 naming the cause. */
function sessionErrorResponse(error: SessionError): Response {
  return new Response(error.message, {
    status: error.status,
    headers: { 'Content-Type': 'text/plain; charset=utf-8' },
  });
}

/**
 * Wraps a Fetch-API handler: `export default { fetch: withSession(config, (request, session) => …) }`.
 * The session is saved before the wrapped handler's promise resolves, so the response never leaves
 * before the data is stored; Set-Cookie is appended to the handler's own headers. A lock timeout or
 * store failure answers 503; an error of the handler is rethrown (after the lock is released) for
 * the server to answer.
 */
export function withSession<Data extends SessionData = AppSessionData>(
  options: FetchSessionOptions,
  handler: SessionFetchHandler<Data>,
): FetchHandler {
  const { readOnly, ip = serverIp, ...config } = options;
  const manager = new SessionManager(config);
  const wrapped = async (request: Request, context?: ServerContext): Promise<Response> => {
    let started: Session<Data>;
    try {
      started = await manager.start<Data>({
        cookieHeader: request.headers.get('cookie') ?? undefined,
        ip: ip(request, context),
        ajax: request.headers.get('x-requested-with')?.toLowerCase() === 'xmlhttprequest',
        readOnly: readOnly?.(request) ?? false,
      });
    } catch (error) {
      if (error instanceof SessionError) return sessionErrorResponse(error);
      throw error;
    }
    let response: Response;
    try {
      response = await handler(request, started);
    } catch (error) {
      await manager.commit(started).catch((commitError: unknown) => {
        manager.config.logger.error('keepsake: saving the session failed', commitError);
      });
      throw error;
    }
    try {
      await manager.commit(started);
    } catch (error) {
      manager.config.logger.error('keepsake: saving the session failed', error);
      if (error instanceof SessionError) return sessionErrorResponse(error);
      throw error;
    }
    const cookies = manager.setCookies(started);
    if (cookies.length === 0) return response;
    // Headers of a fetched or Response.redirect() response are immutable: answer a copy.
    const headers = new Headers(response.headers);
    for (const cookie of cookies) headers.append('Set-Cookie', cookie);
    return new Response(response.body, {
      status: response.status,
      statusText: response.statusText,
      headers,
    });
  };
  return Object.assign(wrapped, { manager });
}

export type { SessionManager } from '../manager.js';
