/**
 * Session IDs in PHP's formats (session.sid_length, session.sid_bits_per_character): what keepsake
 * issues matches what PHP issues with the same settings, a cookie in another format is ignored,
 * and an ID in the right format that the store does not hold is never adopted.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { SessionConfig } from '../../src/config.js';
import { array } from '../../src/drivers/array.js';
import { SessionConfigError } from '../../src/errors.js';
import { isPhpSessionId, type SessionIdBits, SessionIdFormat } from '../../src/id.js';
import { SessionManager } from '../../src/manager.js';
import { phpSkip } from './php-process.js';

const ALPHABETS: Record<SessionIdBits, RegExp> = {
  4: /^[0-9a-f]+$/,
  5: /^[0-9a-v]+$/,
  6: /^[0-9a-zA-Z,-]+$/,
};

async function visit(manager: SessionManager, cookie: string | undefined, set?: [string, number]) {
  const session = await manager.start({
    cookieHeader: cookie === undefined ? undefined : `ci_session=${cookie}`,
    ip: '127.0.0.1',
    ajax: false,
  });
  if (set !== undefined) session.set(set[0], set[1]);
  const cookies = manager.setCookies(session);
  await manager.commit(session);
  return { id: session.id, data: session.get() as Record<string, unknown>, cookies };
}

const skip = await phpSkip();

const managerWith = (sessionId: SessionConfig['sessionId']) =>
  new SessionManager({ driver: array(), gcProbability: 0, sessionId });

describe('session IDs in PHP formats', () => {
  for (const bits of [4, 5, 6] as const) {
    it(`issues IDs of ${bits} bits per character, with PHP's alphabet and every character used`, () => {
      const format = new SessionIdFormat(48, bits);
      const seen = new Set<string>();
      const ids = new Set<string>();
      for (let round = 0; round < 400; round++) {
        const id = format.create();
        assert.equal(id.length, 48);
        assert.match(id, ALPHABETS[bits]);
        assert.ok(format.isValid(id));
        ids.add(id);
        for (const character of id) seen.add(character);
      }
      assert.equal(ids.size, 400);
      assert.equal(seen.size, 2 ** bits);
    });
  }

  it('accepts only its own length and alphabet', () => {
    const format = new SessionIdFormat(32, 5);
    assert.ok(format.isValid('0123456789abcdefghijklmnopqrstuv'));
    assert.ok(!format.isValid('0123456789abcdefghijklmnopqrstuw'));
    assert.ok(!format.isValid('0123456789abcdefghijklmnopqrstu'));
    assert.ok(!format.isValid('0123456789abcdefghijklmnopqrstuvv'));
    assert.ok(!format.isValid('0123456789abcdefghijklmnopqrst/v'));
    assert.ok(!format.isValid(undefined));
    assert.ok(!new SessionIdFormat(32, 4).isValid('0123456789abcdefghijklmnopqrstuv'));
    assert.ok(isPhpSessionId('0123456789abcdefghijklmnopqrstuv'));
    assert.ok(!isPhpSessionId('../../../../etc/passwd/../../../..'));
  });

  it('refuses options PHP does not have, or that give fewer than 128 random bits', () => {
    const cases: [SessionConfig['sessionId'] | string, RegExp][] = [
      [{ length: 21 }, /sessionId\.length.*22 to 256/],
      [{ length: 257 }, /sessionId\.length.*22 to 256/],
      [{ length: 26, bitsPerCharacter: 4 }, /104 random bits.*at least 32 characters/],
      [{ bitsPerCharacter: 3 as SessionIdBits }, /sessionId\.bitsPerCharacter.*4, 5 or 6/],
      [{ sidLength: 32 } as SessionConfig['sessionId'], /sessionId\.sidLength.*unknown option/],
      ['hex', /sessionId.*expected \{ length, bitsPerCharacter \}/],
    ];
    for (const [sessionId, message] of cases) {
      assert.throws(
        () => managerWith(sessionId as SessionConfig['sessionId']),
        (error: unknown) => error instanceof SessionConfigError && message.test(error.message),
        JSON.stringify(sessionId),
      );
    }
  });

  it('a manager issues IDs in its format, and ignores cookies in another', async () => {
    const manager = managerWith({ length: 32, bitsPerCharacter: 5 });
    const first = await visit(manager, undefined, ['n', 1]);
    assert.match(first.id, /^[0-9a-v]{32}$/);
    assert.ok(first.cookies[0]?.startsWith(`ci_session=${first.id};`));
    const again = await visit(manager, first.id);
    assert.equal(again.id, first.id);
    assert.equal(again.data.n, 1);

    const hex = managerWith(undefined);
    const other = await visit(hex, first.id);
    assert.notEqual(other.id, first.id);
    assert.match(other.id, /^[0-9a-f]{32}$/);
    await Promise.all([manager.shutdown(), hex.shutdown()]);
  });

  it('never adopts a well-formed ID the store does not hold', async () => {
    const manager = managerWith({ length: 40, bitsPerCharacter: 6 });
    const chosen = 'attacker-chosen,ID-0123456789abcdefghijk';
    assert.equal(chosen.length, 40);
    const visited = await visit(manager, chosen, ['n', 1]);
    assert.notEqual(visited.id, chosen);
    assert.equal(visited.id.length, 40);
    assert.match(visited.id, ALPHABETS[6]);
    assert.ok(visited.cookies[0]?.startsWith(`ci_session=${visited.id};`));
    await manager.shutdown();
  });

  it('issues IDs of the shape PHP issues with the same php.ini settings', { skip }, async () => {
    const run = promisify(execFile);
    for (const [length, bits] of [
      [32, 5],
      [40, 4],
      [48, 6],
    ] as const) {
      const { stdout } = await run('php', [
        '-d',
        `session.sid_length=${length}`,
        '-d',
        `session.sid_bits_per_character=${bits}`,
        '-r',
        'echo json_encode(array_map(fn() => session_create_id(), range(1, 50)));',
      ]);
      const format = new SessionIdFormat(length, bits);
      for (const id of JSON.parse(stdout) as string[]) {
        assert.ok(format.isValid(id), `PHP issued ${id}, which keepsake's format refuses`);
      }
      assert.ok(format.isValid(format.create()));
    }
  });
});
