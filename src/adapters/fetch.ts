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

function responseOf(answer: FailureAnswer): Response {
  return new Response(answer.body, { status: answer.status, headers: answer.headers });
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
  const { ip = serverIp, ...rest } = options;
  const kit = new AdapterKit<Request>(rest);
  const wrapped = async (request: Request, context?: ServerContext): Promise<Response> => {
    let started: Session<Data>;
    try {
      started = await kit.start<Data>(request, {
        cookieHeader: request.headers.get('cookie') ?? undefined,
        ip: () => ip(request, context),
        requestedWith: request.headers.get('x-requested-with'),
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
  return Object.assign(wrapped, { manager: kit.manager });
}

export type { SessionManager } from '../manager.js';
