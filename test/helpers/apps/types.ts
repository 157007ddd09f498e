import type { SessionConfig } from '../../../src/config.js';
import type { SessionManager } from '../../../src/manager.js';
import type { Session } from '../../../src/session.js';

/** What a route of the shared HTTP suite gets, whatever the framework. */
export interface RouteContext {
  session: Session;
  query: URLSearchParams;
  /** Adds a Set-Cookie of the app's own, the way an app of that framework would. */
  setCookie(value: string): void;
  /** Sets a response header of the app's own (e.g. its Cache-Control), the framework's way. */
  setHeader(name: string, value: string): void;
}

/**
 * A framework-neutral route: returns the body (a string is sent as text, anything else as JSON);
 * a throw goes to the framework's error path.
 */
export type Route = (context: RouteContext) => unknown;

/** GET routes by path. */
export type Routes = Record<string, Route>;

export interface AppOptions {
  session: SessionConfig;
  /** Paths whose session is opened read-only (the adapter's `readOnly` predicate). */
  readOnlyPaths?: readonly string[];
  /** Listen address; 127.0.0.1 unless a test needs IPv6 too ('::'). */
  host?: string;
  /** Serve HTTPS (node:https or the framework's own option) with this key and certificate. */
  tls?: { key: string; cert: string };
  /**
   * Trust the proxy on loopback, the framework's way (Express `trust proxy`, Fastify `trustProxy`,
   * Koa `app.proxy`; node:http, Hono and Fetch through keepsake's `isSecure` option).
   */
  trustProxy?: boolean;
}

export interface RunningApp {
  readonly url: string;
  readonly manager: SessionManager;
  close(): Promise<void>;
}

/** Mounts keepsake and the routes on one framework and listens on a free port. */
export interface AppFactory {
  readonly framework: string;
  start(options: AppOptions, routes: Routes): Promise<RunningApp>;
}

/** The URL of a server listening on `host` and `port`. */
export function urlOf(host: string, port: number, tls = false): string {
  return `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** What a proxy trusted by the app says about the scheme (the `isSecure` option of keepsake). */
export const forwardedHttps = (proto: string | null | undefined): boolean => proto === 'https';

/** The path of a request URL, without its query. */
export function pathOf(url: string | undefined): string {
  return new URL(url ?? '/', 'http://localhost').pathname;
}

/** The query of a request URL. */
export function queryOf(url: string | undefined): URLSearchParams {
  return new URL(url ?? '/', 'http://localhost').searchParams;
}

export function isReadOnly(options: AppOptions, url: string | undefined): boolean {
  return options.readOnlyPaths?.includes(pathOf(url)) ?? false;
}

export const errorMessage = (error: unknown): string =>
  error instanceof Error ? error.message : String(error);
