import { SessionConfigError } from '../../errors.js';

/** One memcached server of a `servers` list (CodeIgniter's `savePath`). */
export interface MemcachedServer {
  host: string;
  port: number;
  weight: number;
}

const ACCEPTED =
  'use host:port[:weight] separated by commas, e.g. "127.0.0.1:11211" or ' +
  '"localhost:11211:5,192.0.2.1:11211:1" (IPv6 hosts in brackets: "[::1]:11211")';

const SERVER =
  /^(?:\[(?<v6>[0-9A-Fa-f:.]+)\]|(?<host>[A-Za-z0-9._-]+)):(?<port>\d{1,5})(?::(?<weight>\d{1,4}))?$/;

/**
 * Parses `host:port[:weight][,host:port[:weight]…]`. Whitespace around entries is ignored, a server
 * listed twice counts once (its first weight wins), and anything malformed is a configuration error.
 */
export function parseMemcachedSavePath(savePath: string, option = 'savePath'): MemcachedServer[] {
  const entries = savePath.split(',').map((entry) => entry.trim());
  if (savePath.trim() === '' || entries.some((entry) => entry === '')) {
    throw new SessionConfigError(option, `the memcached driver needs its servers: ${ACCEPTED}.`);
  }
  const servers = new Map<string, MemcachedServer>();
  for (const entry of entries) {
    const match = SERVER.exec(entry);
    const host = match?.groups?.v6 ?? match?.groups?.host;
    const port = Number(match?.groups?.port);
    const weight = match?.groups?.weight === undefined ? 1 : Number(match.groups.weight);
    if (host === undefined || port < 1 || port > 65535 || weight < 1) {
      throw new SessionConfigError(
        option,
        `${JSON.stringify(entry)} is not a memcached server: ${ACCEPTED}; weights are whole numbers ≥ 1.`,
      );
    }
    const id = `${host.toLowerCase()}:${port}`;
    if (!servers.has(id)) servers.set(id, { host, port, weight });
  }
  return [...servers.values()];
}
