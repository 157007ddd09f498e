import type { SessionConfig } from '../../../src/config.js';
import type { SessionManager } from '../../../src/manager.js';
import type { Session } from '../../../src/session.js';

/** What a route of the shared HTTP suite gets, whatever the framework. */
export interface RouteContext {
  session: Session;
  query: URLSearchParams;
  /** Adds a Set-Cookie of the app's own, the way an app of that framework would. */
  setCookie(value: string): void;
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
export function urlOf(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

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
