/**
 * Smoke test of the real CodeIgniter 4.1.3 app keepsake's tests run (ci-app.ts), on each of its
 * session drivers: log in, read back, flash data once, a counter, destroy; and what CodeIgniter
 * left in the store decodes with keepsake's PHP session decoder.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { createClient } from 'redis';
import { decodePhpSession } from '../../src/codeigniter/php-session-encoding.js';
import { CookieJar } from '../helpers/cookie-jar.js';
import { serviceSkip } from '../helpers/services.js';
import {
  type CodeIgniterApp,
  type CodeIgniterDriver,
  codeIgniterSkip,
  startCodeIgniter,
} from './ci-app.js';
import { createMysqlCodeIgniterTable, createPostgresCodeIgniterTable } from './ci-tables.js';

const POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';
const MYSQL_URL = 'mysql://root@127.0.0.1:3306/test';
/** A Redis database of its own, so these keys never meet other tests' keys in database 0. */
const REDIS_DATABASE = 9;

/** Where CodeIgniter keeps sessions for one test, and how the test reads that store directly. */
interface Store {
  readonly savePath: string;
  /** The stored payload of a session ID, or null when there is none. */
  read(id: string): Promise<Buffer | null>;
  /** Removes everything this test created in the store. */
  cleanup(ids: readonly string[]): Promise<void>;
}

/**
 * The session ID CodeIgniter 4.1.3 makes from php.ini (Session::configureSidLength): it lengthens
 * session.sid_length to reach 160 bits, with the alphabet of session.sid_bits_per_character.
 * Debian's php.ini (26 characters of 5 bits) gives 32 characters of [0-9a-v].
 */
function sessionIdPattern(sidLength: number, sidBits: number): RegExp {
  const bits = sidLength * sidBits;
  const length = bits < 160 ? sidLength + Math.ceil((160 % bits) / sidBits) : sidLength;
  const alphabet = { 4: '[0-9a-f]', 5: '[0-9a-v]', 6: '[0-9a-zA-Z,-]' }[sidBits];
  return new RegExp(`^${alphabet}{${length}}$`);
}

const label = () => `keepsake_ci_${randomBytes(4).toString('hex')}`;

async function fileStore(): Promise<Store> {
  const savePath = await mkdtemp(join(tmpdir(), 'keepsake-ci-sessions-'));
  return {
    savePath,
    async read(id) {
      return readFile(join(savePath, `ci_session${id}`)).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return null;
        throw error;
      });
    },
    cleanup: () => rm(savePath, { recursive: true, force: true }),
  };
}

async function redisStore(): Promise<Store> {
  const prefix = `${label()}:`;
  const client = createClient({ url: `redis://127.0.0.1:6379/${REDIS_DATABASE}` });
  await client.connect();
  return {
    savePath: `tcp://127.0.0.1:6379?database=${REDIS_DATABASE}&prefix=${prefix}`,
    async read(id) {
      const value = await client.get(`${prefix}${id}`);
      return value === null ? null : Buffer.from(value, 'utf8');
    },
    async cleanup() {
      for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 100 })) {
        if (keys.length > 0) await client.del(keys);
      }
      client.destroy();
    },
  };
}

/** One memcached text-protocol command; answers the raw reply. */
function memcachedCommand(command: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect(11211, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const reply = Buffer.concat(chunks).toString('latin1');
      if (/(END|DELETED|NOT_FOUND|ERROR[^\r]*)\r\n$/.test(reply)) {
        socket.end();
        resolve(Buffer.concat(chunks));
      }
    });
    socket.on('error', reject);
    socket.write(`${command}\r\n`);
  });
}

function memcachedStore(): Store {
  // 4.1.3's MemcachedHandler always uses the key prefix "ci_session:" (no option changes it).
  const key = (id: string) => `ci_session:${id}`;
  return {
    savePath: '127.0.0.1:11211',
    async read(id) {
      const reply = await memcachedCommand(`get ${key(id)}`);
      const header = reply.indexOf('\r\n');
      const match = /^VALUE \S+ \d+ (\d+)$/.exec(reply.subarray(0, header).toString('latin1'));
      if (match === null) return null;
      return reply.subarray(header + 2, header + 2 + Number(match[1]));
    },
    async cleanup(ids) {
      for (const id of ids) {
        await memcachedCommand(`delete ${key(id)}`);
        await memcachedCommand(`delete ${key(id)}:lock`);
      }
    },
  };
}

async function postgresStore(): Promise<Store> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  const table = await createPostgresCodeIgniterTable(client);
  return {
    savePath: table,
    async read(id) {
      const { rows } = await client.query(`SELECT data FROM "${table}" WHERE id = $1`, [id]);
      return (rows[0] as { data: Buffer } | undefined)?.data ?? null;
    },
    async cleanup() {
      await client.query(`DROP TABLE IF EXISTS "${table}"`);
      await client.end();
    },
  };
}

async function mysqlStore(): Promise<Store> {
  const connection = await mysql.createConnection({ uri: MYSQL_URL });
  const table = await createMysqlCodeIgniterTable(connection);
  return {
    savePath: table,
    async read(id) {
      const [rows] = await connection.query(`SELECT data FROM \`${table}\` WHERE id = ?`, [id]);
      return (rows as { data: Buffer }[])[0]?.data ?? null;
    },
    async cleanup() {
      await connection.query(`DROP TABLE IF EXISTS \`${table}\``);
      await connection.end();
    },
  };
}

const drivers: {
  driver: CodeIgniterDriver;
  service?: [name: string, port: number];
  store: () => Store | Promise<Store>;
}[] = [
  { driver: 'file', store: fileStore },
  { driver: 'redis', service: ['Redis', 6379], store: redisStore },
  { driver: 'memcached', service: ['memcached', 11211], store: memcachedStore },
  { driver: 'postgres', service: ['PostgreSQL', 5432], store: postgresStore },
  { driver: 'mysql', service: ['MariaDB', 3306], store: mysqlStore },
];

interface State {
  id: string;
  session: Record<string, unknown>;
  [extra: string]: unknown;
}

for (const { driver, service, store: makeStore } of drivers) {
  const skip =
    (await codeIgniterSkip(driver)) ||
    (service === undefined ? false : await serviceSkip(service[0], '127.0.0.1', service[1]));

  describe(`CodeIgniter 4.1.3 sessions on the ${driver} driver`, { skip }, () => {
    let store: Store;
    let app: CodeIgniterApp;
    const seenIds = new Set<string>();
    const jar = new CookieJar();

    /** GETs a /keepsake/ route with the jar's cookie; fails with CodeIgniter's log on a non-200. */
    async function call(path: string): Promise<{ response: Response; body: State }> {
      const response = await jar.fetch(`${app.url}/keepsake/${path}`);
      const text = await response.text();
      assert.equal(
        response.status,
        200,
        `${path} answered ${response.status}: ${text}\n${await app.logs()}`,
      );
      const body = JSON.parse(text) as State;
      if (typeof body.id === 'string') seenIds.add(body.id);
      return { response, body };
    }

    before(async () => {
      store = await makeStore();
      app = await startCodeIgniter({ driver, savePath: store.savePath });
    });
    after(async () => {
      await app?.stop();
      await store?.cleanup([...seenIds]);
    });

    it('logs in, reads back, keeps flash data for one request, counts, and destroys', async () => {
      const ping = (await (await fetch(`${app.url}/keepsake/ping`)).json()) as {
        codeigniter: string;
        sidLength: number;
        sidBits: number;
      };
      assert.equal(ping.codeigniter, '4.1.3');
      const { response: login, body: loggedIn } = await call('login?user=alice');
      const id = loggedIn.id;
      assert.match(id, sessionIdPattern(ping.sidLength, ping.sidBits));
      assert.deepEqual(
        login.headers.getSetCookie().map((line) => line.split(';')[0]),
        [`ci_session=${id}`],
      );
      assert.deepEqual(loggedIn.session.user, { name: 'alice', loggedIn: true });
      assert.equal(typeof loggedIn.session.__ci_last_regenerate, 'number');

      const { body: read } = await call('read');
      assert.equal(read.id, id);
      assert.deepEqual(read.session.user, { name: 'alice', loggedIn: true });
      assert.equal(read.session._ci_previous_url, `${app.url}/keepsake/login?user=alice`);

      const stored = await store.read(id);
      assert.ok(stored, `no stored session ${id}`);
      assert.deepEqual(
        Object.fromEntries(decodePhpSession(stored)),
        { ...read.session, _ci_previous_url: `${app.url}/keepsake/read` },
        stored.toString('utf8'),
      );

      await call(`flash?key=notice&value=${encodeURIComponent('"Saved ✓"')}`);
      assert.equal((await call('flash-read?key=notice')).body.flash, 'Saved ✓');
      const { body: afterFlash } = await call('flash-read?key=notice');
      assert.equal(afterFlash.flash, null);
      assert.equal(afterFlash.session.notice, undefined);

      const counts = [];
      for (let round = 0; round < 3; round++) counts.push((await call('increment')).body.after);
      assert.deepEqual(counts, [1, 2, 3]);
      const counted = await store.read(id);
      assert.ok(counted);
      assert.equal(decodePhpSession(counted).get('counter'), 3);

      const { response: destroyed } = await call('destroy');
      assert.deepEqual(destroyed.headers.getSetCookie(), [
        'ci_session=deleted; expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0; path=/; HttpOnly',
      ]);
      assert.equal(await store.read(id), null);
      assert.equal(jar.get('ci_session'), undefined);

      const { body: fresh } = await call('read');
      assert.notEqual(fresh.id, id);
      assert.equal(fresh.session.user, undefined);
    });
  });
}
