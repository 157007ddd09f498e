/**
 * One browser's session shared by a real CodeIgniter 4.1.3 app (ci-app.ts) and keepsake, on one
 * store in CodeIgniter's layout: the scenarios every driver's compatibility mode must pass. A
 * driver's test file calls sharedSessionSuite() with its store and its keepsake driver.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { SessionDriver } from '../../src/drivers/contract.js';
import { SessionManager } from '../../src/manager.js';
import type { Session } from '../../src/session.js';
import { type CodeIgniterApp, type CodeIgniterOptions, startCodeIgniter } from './ci-app.js';

/** Debian's php.ini asks for 26 characters of 5 bits, which CodeIgniter 4.1 lengthens to 32. */
export const PHP_ID_INI = { 'session.sid_length': '32', 'session.sid_bits_per_character': '5' };
export const PHP_ID_FORMAT = { length: 32, bitsPerCharacter: 5 } as const;
const ID_PATTERN = /^[0-9a-v]{32}$/;

export interface SharedStore {
  /** CodeIgniter's settings for this store (driver, savePath, ini…). */
  readonly codeigniter: CodeIgniterOptions;
  /** keepsake's driver in CodeIgniter's layout, on the same store. */
  driver(): SessionDriver;
  /** The PHP session data stored under an ID, or null when there is none. */
  read(id: string): Promise<Buffer | null>;
  /** Stores PHP session data under an ID, as PHP would (to plant what only PHP code can store). */
  write(id: string, data: Buffer): Promise<void>;
  cleanup(): Promise<void>;
}

interface PhpAnswer {
  readonly status: number;
  /** The session ID the browser holds afterwards (undefined: its cookie was deleted). */
  readonly id: string | undefined;
  readonly setCookies: string[];
  readonly body: { id?: string; session?: Record<string, unknown>; [extra: string]: unknown };
}

interface NodeAnswer<T> {
  readonly id: string | undefined;
  readonly setCookies: string[];
  readonly result: T;
}

/** The session ID a browser holding `id` has after these Set-Cookie headers. */
function idAfter(id: string | undefined, setCookies: readonly string[]): string | undefined {
  let current = id;
  for (const line of setCookies) {
    const match = /^ci_session=([^;]*)/.exec(line);
    if (match === null) continue;
    current = /;\s*max-age=0/i.test(line) ? undefined : match[1];
  }
  return current;
}

export function sharedSessionSuite(
  name: string,
  skip: string | false,
  makeStore: () => Promise<SharedStore>,
) {
  describe(`CodeIgniter 4.1.3 and keepsake sharing sessions: ${name}`, { skip }, () => {
    let store: SharedStore;
    let app: CodeIgniterApp;
    let manager: SessionManager;

    before(async () => {
      store = await makeStore();
      app = await startCodeIgniter({
        ...store.codeigniter,
        ini: { ...PHP_ID_INI, ...store.codeigniter.ini },
      });
      manager = new SessionManager({
        driver: store.driver(),
        sessionId: PHP_ID_FORMAT,
        gcProbability: 0,
        // PHP requests hold the lock in turn for as long as the 200-increment test lasts.
        lockWait: 60_000,
      });
      await manager.ready();
    });
    after(async () => {
      await manager?.shutdown();
      await app?.stop();
      await store?.cleanup();
    });

    /** One request to the CodeIgniter app with the browser's session cookie. */
    async function php(id: string | undefined, path: string): Promise<PhpAnswer> {
      const response = await fetch(`${app.url}/keepsake/${path}`, {
        headers: id === undefined ? {} : { cookie: `ci_session=${id}` },
      });
      const text = await response.text();
      assert.equal(
        response.status,
        200,
        `${path} answered ${response.status}: ${text}\n${await app.logs()}`,
      );
      const setCookies = response.headers.getSetCookie();
      return {
        status: response.status,
        id: idAfter(id, setCookies),
        setCookies,
        body: JSON.parse(text),
      };
    }

    /** One request to keepsake with the browser's session cookie. */
    async function node<T>(
      id: string | undefined,
      work: (session: Session) => T | Promise<T>,
    ): Promise<NodeAnswer<T>> {
      const session = await manager.start({
        cookieHeader: id === undefined ? undefined : `ci_session=${id}`,
        ip: '127.0.0.1',
        ajax: false,
      });
      const result = await work(session);
      const setCookies = manager.setCookies(session);
      await manager.commit(session);
      return { id: idAfter(id, setCookies), setCookies, result };
    }

    const json = (value: unknown) => encodeURIComponent(JSON.stringify(value));

    it('a login on PHP is read on Node, and what Node stores is read on PHP', async () => {
      const login = await php(undefined, 'login?user=alice');
      assert.match(login.id ?? '', ID_PATTERN);
      const read = await node(login.id, (session) => {
        const user = session.get('user');
        session.set('cart', { items: [1, 2.5, 'three'], note: 'é ✓', empty: null, ok: true });
        return user;
      });
      assert.equal(read.id, login.id);
      assert.deepEqual(read.setCookies, []);
      assert.deepEqual(read.result, { name: 'alice', loggedIn: true });
      const back = await php(login.id, 'read');
      assert.deepEqual(back.body.session?.cart, {
        items: [1, 2.5, 'three'],
        note: 'é ✓',
        empty: null,
        ok: true,
      });
      assert.deepEqual(back.body.session?.user, { name: 'alice', loggedIn: true });
      const stored = await store.read(login.id ?? '');
      assert.match(
        stored?.toString('utf8') ?? '',
        /cart\|a:4:\{s:5:"items";a:3:\{i:0;i:1;i:1;d:2\.5;i:2;s:5:"three";\}/,
      );
    });

    it('flash data set on Node is read exactly once on PHP', async () => {
      const { id } = await php(undefined, 'login?user=bob');
      await node(id, (session) => session.setFlashdata('notice', 'Saved ✓'));
      assert.equal((await php(id, 'flash-read?key=notice')).body.flash, 'Saved ✓');
      const second = await php(id, 'flash-read?key=notice');
      assert.equal(second.body.flash, null);
      assert.equal(second.body.session?.notice, undefined);
      assert.equal((await node(id, (session) => session.getFlashdata('notice'))).result, null);
    });

    it('flash data set on PHP is read exactly once on Node', async () => {
      const { id } = await php(undefined, 'login?user=carol');
      await php(id, `flash?key=notice&value=${json('From PHP')}`);
      assert.equal(
        (await node(id, (session) => session.getFlashdata('notice'))).result,
        'From PHP',
      );
      assert.equal((await node(id, (session) => session.getFlashdata('notice'))).result, null);
      assert.equal((await php(id, 'flash-read?key=notice')).body.flash, null);
    });

    it('tempdata crosses both ways with its expiry', async () => {
      const { id } = await php(undefined, 'login?user=dave');
      await php(id, `temp?key=coupon&value=${json('PHP-10')}&ttl=300`);
      const onNode = await node(id, (session) => {
        session.setTempdata('banner', 'Node-20', 120);
        return session.getTempdata('coupon');
      });
      assert.equal(onNode.result, 'PHP-10');
      const onPhp = await php(id, 'temp-read?key=banner');
      assert.equal(onPhp.body.temp, 'Node-20');
      const vars = onPhp.body.session?.__ci_vars as Record<string, number>;
      const now = Math.floor(Date.now() / 1000);
      assert.ok(Math.abs((vars.banner ?? 0) - (now + 120)) <= 2, JSON.stringify(vars));
      assert.ok(Math.abs((vars.coupon ?? 0) - (now + 300)) <= 2, JSON.stringify(vars));
      // Both sides still read both after each other's writes.
      assert.equal((await node(id, (session) => session.getTempdata('banner'))).result, 'Node-20');
      assert.equal((await php(id, 'temp-read?key=coupon')).body.temp, 'PHP-10');
    });

    it('200 concurrent increments split between PHP and Node lose nothing', async () => {
      const { id } = await php(undefined, 'login?user=erin');
      const rounds = Array.from({ length: 200 }, (_, index) =>
        index % 2 === 0
          ? php(id, 'increment?key=hits').then((answer) => answer.body.after as number)
          : node(id, (session) => {
              const after = ((session.get('hits') as number | undefined) ?? 0) + 1;
              session.set('hits', after);
              return after;
            }).then((answer) => answer.result),
      );
      const afters = await Promise.all(rounds);
      // Each increment saw every earlier one: the values seen are exactly 1..200.
      assert.deepEqual(
        [...afters].sort((a, b) => a - b),
        Array.from({ length: 200 }, (_, index) => index + 1),
      );
      assert.equal((await php(id, 'read')).body.session?.hits, 200);
      assert.equal((await node(id, (session) => session.get('hits'))).result, 200);
    });

    it('a destroy on PHP is seen by Node', async () => {
      const { id } = await php(undefined, 'login?user=fay');
      const destroyed = await php(id, 'destroy');
      assert.equal(destroyed.id, undefined);
      assert.equal(await store.read(id ?? ''), null);
      // keepsake never adopts the ID: the request gets a fresh one (its cookie goes out once it
      // stores something).
      const after = await node(id, (session) => ({ user: session.get('user'), id: session.id }));
      assert.equal(after.result.user, null);
      assert.notEqual(after.result.id, id);
      assert.match(after.result.id, ID_PATTERN);
    });

    it('a destroy on Node is seen by PHP', async () => {
      const { id } = await php(undefined, 'login?user=gus');
      const destroyed = await node(id, (session) => session.destroy());
      assert.equal(destroyed.id, undefined);
      assert.equal(await store.read(id ?? ''), null);
      // CodeIgniter 4.1 adopts the stale ID, but finds nothing under it.
      const after = await php(id, 'read');
      assert.equal(after.body.session?.user, undefined);
    });

    it('a regeneration on PHP is followed by Node; the old ID keeps its data, as CodeIgniter leaves it', async () => {
      const { id: oldId } = await php(undefined, 'login?user=hal');
      const regenerated = await php(oldId, 'regenerate');
      assert.equal(regenerated.body.oldId, oldId);
      const newId = regenerated.id;
      assert.match(newId ?? '', ID_PATTERN);
      assert.notEqual(newId, oldId);
      const onNode = await node(newId, (session) => {
        session.set('after', 'node');
        return session.get('user');
      });
      assert.equal(onNode.id, newId);
      assert.deepEqual(onNode.result, { name: 'hal', loggedIn: true });
      assert.equal((await php(newId, 'read')).body.session?.after, 'node');
      assert.deepEqual((await node(oldId, (session) => session.get('user'))).result, {
        name: 'hal',
        loggedIn: true,
      });
    });

    it('a regeneration on Node is followed by PHP; the old ID keeps the data for PHP and leads Node to the new one', async () => {
      const { id: oldId } = await php(undefined, 'login?user=ivy');
      const regenerated = await node(oldId, async (session) => {
        session.set('step', 1);
        await session.regenerate(false);
        session.set('step', 2);
        return session.id;
      });
      const newId = regenerated.id;
      assert.equal(newId, regenerated.result);
      assert.match(newId ?? '', ID_PATTERN);
      assert.notEqual(newId, oldId);
      const onPhp = await php(newId, 'read');
      assert.equal(onPhp.id, newId);
      assert.deepEqual(onPhp.body.session?.user, { name: 'ivy', loggedIn: true });
      assert.equal(onPhp.body.session?.step, 2);
      // A PHP request still carrying the old cookie finds the data there, as after CodeIgniter's
      // own regenerate(false).
      const stale = await php(oldId, 'read');
      assert.deepEqual(stale.body.session?.user, { name: 'ivy', loggedIn: true });
      // keepsake follows its forwarding record from the old ID to the new one.
      const followed = await node(oldId, (session) => session.get('step'));
      assert.equal(followed.result, 2);
      assert.equal(idAfter(undefined, followed.setCookies) ?? followed.id, newId);
    });

    it('refuses to store what PHP cannot hold, and leaves the stored session as it was', async () => {
      const { id } = await php(undefined, 'login?user=kim');
      const before = await store.read(id ?? '');
      await assert.rejects(
        node(id, (session) => session.set('when', new Date())),
        /session key "when".*a Date/,
      );
      assert.deepEqual(await store.read(id ?? ''), before);
      // The lock was given back: both sides go on.
      assert.deepEqual((await node(id, (session) => session.get('user'))).result, {
        name: 'kim',
        loggedIn: true,
      });
      assert.deepEqual((await php(id, 'read')).body.session?.user, { name: 'kim', loggedIn: true });
    });

    it('refuses, without touching it, a PHP session holding an object', async () => {
      const { id } = await php(undefined, 'login?user=jo');
      const stored = await store.read(id ?? '');
      assert.ok(stored);
      // Only PHP code can store an object; the test controller stores JSON, so write one as PHP would.
      await store.write(
        id ?? '',
        Buffer.from(`${stored.toString('utf8')}obj|O:8:"stdClass":1:{s:1:"a";i:1;}`),
      );
      await assert.rejects(
        node(id, (session) => session.get('user')),
        /holds a value keepsake cannot read.*PHP object/,
      );
      assert.match((await store.read(id ?? ''))?.toString('utf8') ?? '', /obj\|O:8:"stdClass"/);
    });
  });
}
