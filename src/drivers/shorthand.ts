import { SessionConfigError } from '../errors.js';
import { array } from './array.js';
import type { SessionDriver } from './contract.js';
import { database } from './database.js';
import { file } from './file.js';
import { memcached } from './memcached.js';
import { redis } from './redis.js';

export const DRIVER_NAMES = ['file', 'database', 'redis', 'memcached', 'array'] as const;
export type DriverName = (typeof DRIVER_NAMES)[number];

/**
 * CodeIgniter's way to configure a driver — a name, a `savePath` whose meaning depends on it, and
 * for keepsake a `connection` (client, pool or URL) — mapped onto the driver's own factory, so both
 * forms are the same driver and fail the same way on a bad setting.
 */
export function driverFromShorthand(
  name: DriverName,
  savePath: string,
  connection: unknown,
): SessionDriver {
  switch (name) {
    case 'file':
      refuseConnection(name, connection);
      return file(savePath === '' ? {} : { directory: savePath });
    case 'array':
      refuseConnection(name, connection);
      return array();
    case 'database':
      return database({
        connection: connection as Parameters<typeof database>[0]['connection'],
        ...(savePath === '' ? {} : { table: savePath }),
      });
    case 'redis':
      return redis(
        connection === undefined || connection === null
          ? { url: savePath }
          : typeof connection === 'string'
            ? { url: connection, ...(savePath === '' ? {} : { savePath }) }
            : {
                client: connection as NonNullable<Parameters<typeof redis>[0]['client']>,
                ...(savePath === '' ? {} : { savePath }),
              },
      );
    case 'memcached':
      return memcached(
        connection === undefined || connection === null
          ? { servers: savePath }
          : { client: connection as NonNullable<Parameters<typeof memcached>[0]['client']> },
      );
  }
}

function refuseConnection(name: DriverName, connection: unknown): void {
  if (connection !== undefined) {
    throw new SessionConfigError(
      'connection',
      `the ${name} driver takes no connection; remove the option (only database, redis and memcached use it).`,
    );
  }
}
