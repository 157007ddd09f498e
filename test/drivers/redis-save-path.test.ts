import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  parseRedisSavePath,
  type RedisSavePath,
  redactSavePath,
} from '../../src/drivers/redis/save-path.js';
import { SessionConfigError } from '../../src/errors.js';

const tcp = (host: string, port = 6379, tls = false) => ({ kind: 'tcp', host, port, tls }) as const;
const unix = (path: string) => ({ kind: 'unix', path }) as const;

function expected(overrides: Partial<RedisSavePath>): RedisSavePath {
  return {
    server: tcp('127.0.0.1'),
    username: null,
    password: null,
    database: 0,
    timeoutSeconds: 0,
    persistent: null,
    prefix: null,
    ...overrides,
  };
}

describe('redis save path: the accepted forms', () => {
  // The first twelve are CodeIgniter 4's RedisHandlerTest::testSetSavePath cases.
  const cases: [string, RedisSavePath][] = [
    ['127.0.0.1:6379', expected({})],
    [
      'tls://127.0.0.1:6379?auth=password',
      expected({ server: tcp('127.0.0.1', 6379, true), password: 'password' }),
    ],
    ['tcp://127.0.0.1:6379?auth=password', expected({ password: 'password' })],
    ['tcp://127.0.0.1:6379?timeout=2.5', expected({ timeoutSeconds: 2.5 })],
    ['tcp://127.0.0.1:6379?timeout=10', expected({ timeoutSeconds: 10 })],
    [
      'tcp://localhost:6379?auth[user]=redis-admin&auth[pass]=admin-password',
      expected({ server: tcp('localhost'), username: 'redis-admin', password: 'admin-password' }),
    ],
    ['unix:///tmp/redis.sock', expected({ server: unix('/tmp/redis.sock') })],
    ['/tmp/redis.sock', expected({ server: unix('/tmp/redis.sock') })],
    [
      'tcp://127.0.0.1:6379?timeout=10&persistent=1',
      expected({ timeoutSeconds: 10, persistent: true }),
    ],
    [
      'tcp://127.0.0.1:6379?timeout=10&persistent=0',
      expected({ timeoutSeconds: 10, persistent: false }),
    ],
    [
      'tcp://127.0.0.1:6379?timeout=10&persistent=true',
      expected({ timeoutSeconds: 10, persistent: true }),
    ],
    [
      'tcp://127.0.0.1:6379?timeout=10&persistent=false',
      expected({ timeoutSeconds: 10, persistent: false }),
    ],
    // The worked example of the reference (§3.4).
    [
      'tcp://10.0.0.5:6380?auth=secret&database=2&prefix=myapp:&timeout=2.5',
      expected({
        server: tcp('10.0.0.5', 6380),
        password: 'secret',
        database: 2,
        prefix: 'myapp:',
        timeoutSeconds: 2.5,
      }),
    ],
    ['tcp://redis.internal', expected({ server: tcp('redis.internal') })],
    ['TCP://127.0.0.1:6379', expected({})],
    ['tls://cache.example.com', expected({ server: tcp('cache.example.com', 6379, true) })],
    ['[::1]:6380', expected({ server: tcp('::1', 6380) })],
    ['tcp://[::1]:6380', expected({ server: tcp('::1', 6380) })],
    [
      'unix:///run/redis/redis.sock?database=3&prefix=app:',
      expected({ server: unix('/run/redis/redis.sock'), database: 3, prefix: 'app:' }),
    ],
    ['/run/redis.sock?auth=pw', expected({ server: unix('/run/redis.sock'), password: 'pw' })],
    ['redis://127.0.0.1:6379', expected({})],
    ['redis://localhost', expected({ server: tcp('localhost') })],
    ['redis://:secret@127.0.0.1:6379/4', expected({ password: 'secret', database: 4 })],
    ['redis://alice:s%40cret@127.0.0.1:6379', expected({ username: 'alice', password: 's@cret' })],
    ['redis://secret@127.0.0.1', expected({ password: 'secret' })],
    [
      'rediss://cache.example.com:6380/1?prefix=web:',
      expected({ server: tcp('cache.example.com', 6380, true), database: 1, prefix: 'web:' }),
    ],
    [
      'redis://127.0.0.1?auth[user]=bob&auth[pass]=pw',
      expected({ username: 'bob', password: 'pw' }),
    ],
    ['127.0.0.1:6379?auth%5Bpass%5D=pw', expected({ password: 'pw' })],
    ['127.0.0.1:6379?auth=p%26w%3D', expected({ password: 'p&w=' })],
    ['127.0.0.1:6379?prefix=my+app:', expected({ prefix: 'my app:' })],
    ['127.0.0.1:6379?prefix={tenant}:', expected({ prefix: '{tenant}:' })],
    ['127.0.0.1:6379?persistent=on', expected({ persistent: true })],
    ['127.0.0.1:6379?persistent=yes', expected({ persistent: true })],
    ['127.0.0.1:6379?persistent=off', expected({ persistent: false })],
    ['127.0.0.1:6379?persistent=no', expected({ persistent: false })],
    ['127.0.0.1:6379?persistent=', expected({ persistent: false })],
    ['127.0.0.1:6379?persistent=TRUE', expected({ persistent: true })],
    ['127.0.0.1:6379?timeout=0.25', expected({ timeoutSeconds: 0.25 })],
    ['127.0.0.1:6379?database=15', expected({ database: 15 })],
    ['127.0.0.1:6379?', expected({})],
    ['127.0.0.1:6379?&database=1&', expected({ database: 1 })],
  ];
  for (const [savePath, result] of cases) {
    it(`parses ${savePath}`, () => {
      assert.deepEqual(parseRedisSavePath(savePath), result);
    });
  }

  it('accepts a query with no server only next to an injected client', () => {
    assert.deepEqual(
      parseRedisSavePath('?prefix=app:', 'savePath', true),
      expected({ server: null, prefix: 'app:' }),
    );
    assert.throws(() => parseRedisSavePath('?prefix=app:'), SessionConfigError);
  });
});

describe('redis save path: malformed paths are configuration errors', () => {
  const cases: [string, RegExp][] = [
    ['', /No save path configured/],
    ['   ', /No save path configured/],
    ['localhost', /has no port/],
    ['redis-host', /has no port/],
    ['127.0.0.1:', /port must be a number/],
    ['127.0.0.1:0', /port must be a number/],
    ['127.0.0.1:65536', /port must be a number/],
    ['127.0.0.1:abc', /port must be a number/],
    ['tcp://127.0.0.1:6379:1', /not a host or host:port/],
    ['tcp://', /not a host or host:port/],
    ['tcp://:6379', /not a host or host:port/],
    ['::1:6379', /not a host or host:port/],
    ['tcp://127.0.0.1:6379/2', /has no path/],
    ['tcp://user:pw@127.0.0.1:6379', /credentials in auth=/],
    ['http://127.0.0.1:6379', /unknown scheme "http:\/\/"/],
    ['memcached://127.0.0.1:11211', /unknown scheme/],
    ['unix://relative.sock', /must be absolute/],
    ['unix://', /must be absolute/],
    ['unix:///', /must be absolute/],
    ['redis://127.0.0.1/abc', /database number/],
    ['redis://:pw@127.0.0.1?auth=other', /credentials and auth=/],
    ['redis://127.0.0.1/1?database=2', /both give a database/],
    ['127.0.0.1:6379?dtabase=1', /unknown parameter "dtabase"/],
    ['127.0.0.1:6379?database=1&database=2', /given twice/],
    ['127.0.0.1:6379?database=one', /database must be a whole number/],
    ['127.0.0.1:6379?database=-1', /database must be a whole number/],
    ['127.0.0.1:6379?database=', /database must be a whole number/],
    ['127.0.0.1:6379?timeout=abc', /timeout must be seconds/],
    ['127.0.0.1:6379?timeout=-1', /timeout must be seconds/],
    ['127.0.0.1:6379?timeout=1.', /timeout must be seconds/],
    ['127.0.0.1:6379?persistent=maybe', /persistent must be/],
    ['127.0.0.1:6379?auth=', /auth= is empty/],
    ['127.0.0.1:6379?auth=pw&auth[pass]=pw', /either auth=/],
    ['127.0.0.1:6379?auth[user]=bob', /auth\[user\] needs auth\[pass\]/],
    ['127.0.0.1:6379?auth[user]=&auth[pass]=pw', /auth\[user\]= is empty/],
    ['127.0.0.1:6379?auth[pass]=', /auth\[pass\]= is empty/],
    ['127.0.0.1:6379?prefix=', /prefix= is empty/],
    ['127.0.0.1:6379?prefix=a{}b', /Cluster hash tags/],
    ['127.0.0.1:6379?auth=%zz', /broken %-escape/],
    ['127.0.0.1:6379 ?prefix=a', /whitespace/],
  ];
  for (const [savePath, reason] of cases) {
    it(`rejects ${JSON.stringify(savePath)}`, () => {
      assert.throws(
        () => parseRedisSavePath(savePath),
        (error: unknown) => {
          assert.ok(error instanceof SessionConfigError, 'a SessionConfigError');
          assert.equal(error.option, 'savePath');
          assert.match(error.message, reason);
          if (savePath.trim() !== '') {
            assert.match(error.message, /Accepted forms: tcp:\/\/host:port, tls:\/\/host:port/);
          }
          return true;
        },
      );
    });
  }

  it('names the option the text came from', () => {
    assert.throws(
      () => parseRedisSavePath('localhost', 'connection'),
      (error: unknown) => error instanceof SessionConfigError && error.option === 'connection',
    );
  });

  it('never repeats a password in the error', () => {
    for (const savePath of [
      '127.0.0.1:6379?auth=hunter2&database=x',
      '127.0.0.1:6379?auth[user]=bob&auth[pass]=hunter2&timeout=x',
      'redis://bob:hunter2@127.0.0.1/x',
      'redis://hunter2@127.0.0.1/x',
    ]) {
      assert.throws(
        () => parseRedisSavePath(savePath),
        (error: unknown) =>
          error instanceof SessionConfigError && !error.message.includes('hunter2'),
      );
    }
  });

  it('redacts passwords but keeps the rest readable', () => {
    assert.equal(redactSavePath('tcp://h:1?auth=pw&prefix=a:'), 'tcp://h:1?auth=***&prefix=a:');
    assert.equal(redactSavePath('rediss://bob:pw@h:1/2'), 'rediss://bob:***@h:1/2');
  });
});
