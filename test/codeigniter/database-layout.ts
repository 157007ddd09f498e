/**
 * What only the database driver's CodeIgniter layout does, on one server: the row CodeIgniter
 * 4.1.3 writes (its timestamp), the row keepsake writes (the client's address, the time), and
 * CodeIgniter's named locks, taken from another connection the way DatabaseHandler takes them.
 * shared-postgres.test.ts and shared-mysql.test.ts run it next to the shared scenarios.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { database } from '../../src/drivers/database.js';
import { SessionConfigError } from '../../src/errors.js';
import { SessionManager } from '../../src/manager.js';
import type { Session } from '../../src/session.js';
import { type CodeIgniterApp, type CodeIgniterDriver, startCodeIgniter } from './ci-app.js';
import { PHP_ID_FORMAT, PHP_ID_INI } from './shared-sessions.js';

/** A server's side of the tests: its table, a row's columns, and a second connection's lock. */
export interface LayoutServer {
  readonly driver: Extract<CodeIgniterDriver, 'postgres' | 'mysql'>;
  readonly url: string;
  /** Creates CodeIgniter's user guide table (or, with `keepsake`, keepsake's own) and answers its name. */
  createTable(kind: 'codeigniter' | 'keepsake', matchIP?: boolean): Promise<string>;
  /** The row's ip_address, its timestamp as text, and the seconds between it and the server's now(). */
  row(
    table: string,
    id: string,
  ): Promise<{ ip: string; timestamp: string; secondsAgo: number | null } | null>;
  /** Takes CodeIgniter's lock of `id` (of `ip` too, as under matchIP) on a connection of its own; answers whether it got it. */
  lockAsCodeIgniter(id: string, ip?: string): Promise<boolean>;
  unlockAsCodeIgniter(id: string, ip?: string): Promise<void>;
  /** The timestamp CodeIgniter 4.1.3's rows hold on this server. */
  readonly codeIgniterTimestamp: RegExp;
  dropTables(): Promise<void>;
  close(): Promise<void>;
}

export function databaseLayoutSuite(
  name: string,
  skip: string | false,
  server: () => LayoutServer,
) {
  /** CodeIgniter's table, a CodeIgniter app and a keepsake manager on it, for one describe(). */
  function shared(matchIP: boolean) {
    const fixture = {} as {
      db: LayoutServer;
      table: string;
      app: CodeIgniterApp;
      manager: SessionManager;
    };
    before(async () => {
      fixture.db = server();
      const table = await fixture.db.createTable('codeigniter', matchIP);
      fixture.table = table;
      fixture.app = await startCodeIgniter({
        driver: fixture.db.driver,
        savePath: table,
        matchIP,
        ini: PHP_ID_INI,
      });
      fixture.manager = new SessionManager({
        driver: database({ connection: fixture.db.url, table, layout: 'codeigniter' }),
        sessionId: PHP_ID_FORMAT,
        gcProbability: 0,
        matchIP,
        lockWait: 600,
      });
      await fixture.manager.ready();
    });
    after(async () => {
      await fixture.manager?.shutdown();
      await fixture.app?.stop();
      await fixture.db?.dropTables();
      await fixture.db?.close();
    });
    return fixture;
  }

  describe(`database in CodeIgniter's layout on ${name}`, { skip }, () => {
    const fixture = shared(false);

    async function phpLogin(): Promise<string> {
      const response = await fetch(`${fixture.app.url}/keepsake/login?user=zoe`);
      assert.equal(response.status, 200, await fixture.app.logs());
      const body = (await response.json()) as { id: string };
      return body.id;
    }

    async function onNode<T>(id: string, ip: string, work: (session: Session) => T): Promise<T> {
      const session = await fixture.manager.start({
        cookieHeader: `ci_session=${id}`,
        ip,
        ajax: false,
      });
      const result = work(session);
      await fixture.manager.commit(session);
      return result;
    }

    it("reads the row CodeIgniter wrote, and stores the client's address and the time in it", async () => {
      const id = await phpLogin();
      const written = await fixture.db.row(fixture.table, id);
      assert.match(written?.timestamp ?? '', fixture.db.codeIgniterTimestamp);
      const user = await onNode(id, '10.9.8.7', (session) => {
        session.set('seen', 'node');
        return session.get('user');
      });
      assert.deepEqual(user, { name: 'zoe', loggedIn: true });
      const rewritten = await fixture.db.row(fixture.table, id);
      // As CodeIgniter's update, keepsake's leaves the address the row was created from.
      assert.equal(rewritten?.ip, '127.0.0.1');
      assert.ok(
        rewritten?.secondsAgo !== null && Math.abs(rewritten?.secondsAgo ?? 99) <= 5,
        JSON.stringify(rewritten),
      );
      // A session created on Node records its client's address, though matchIP is off.
      const created = await fixture.manager.start({
        cookieHeader: undefined,
        ip: '10.9.8.7',
        ajax: false,
      });
      created.set('user', { name: 'yan', loggedIn: true });
      await fixture.manager.commit(created);
      const inserted = await fixture.db.row(fixture.table, created.id);
      assert.equal(inserted?.ip, '10.9.8.7');
      assert.ok(
        inserted?.secondsAgo !== null && Math.abs(inserted?.secondsAgo ?? 99) <= 5,
        JSON.stringify(inserted),
      );
      const onPhp = await fetch(`${fixture.app.url}/keepsake/read`, {
        headers: { cookie: `ci_session=${created.id}` },
      });
      const state = (await onPhp.json()) as { session: Record<string, unknown> };
      assert.deepEqual(state.session.user, { name: 'yan', loggedIn: true });
    });

    it("waits for CodeIgniter's lock, and holds one CodeIgniter waits for", async () => {
      const id = await phpLogin();
      assert.equal(await fixture.db.lockAsCodeIgniter(id), true);
      try {
        await assert.rejects(
          fixture.manager.start({ cookieHeader: `ci_session=${id}`, ip: '127.0.0.1', ajax: false }),
          /lock/i,
        );
      } finally {
        await fixture.db.unlockAsCodeIgniter(id);
      }
      const session = await fixture.manager.start({
        cookieHeader: `ci_session=${id}`,
        ip: '127.0.0.1',
        ajax: false,
      });
      try {
        assert.equal(await fixture.db.lockAsCodeIgniter(id), false);
      } finally {
        await fixture.manager.commit(session);
      }
      assert.equal(await fixture.db.lockAsCodeIgniter(id), true);
      await fixture.db.unlockAsCodeIgniter(id);
    });

    it("revokes a session only under its lock, after CodeIgniter's request let go of it", async () => {
      const id = await phpLogin();
      assert.equal(await fixture.db.lockAsCodeIgniter(id), true);
      try {
        await assert.rejects(fixture.manager.revoke(id), /lock/i);
        assert.notEqual(await fixture.db.row(fixture.table, id), null);
      } finally {
        await fixture.db.unlockAsCodeIgniter(id);
      }
      assert.equal(await fixture.manager.revoke(id), true);
      assert.equal(await fixture.db.row(fixture.table, id), null);
    });

    it("refuses keepsake's own table, and keepsake's layout opens CodeIgniter's as it is", async () => {
      const own = await fixture.db.createTable('keepsake');
      const wrongLayout = new SessionManager({
        driver: database({ connection: fixture.db.url, table: own, layout: 'codeigniter' }),
      });
      await assert.rejects(
        wrongLayout.ready(),
        (error: unknown) =>
          error instanceof SessionConfigError &&
          /layout: 'codeigniter' needs CodeIgniter's session table/.test(error.message),
      );
      await wrongLayout.shutdown();
      // CodeIgniter's table in keepsake's layout: JSON payloads, keepsake's locks, the same rows.
      const id = await phpLogin();
      const ownLayout = new SessionManager({
        driver: database({ connection: fixture.db.url, table: fixture.table }),
        sessionId: PHP_ID_FORMAT,
        gcProbability: 0,
        logger: { debug: () => {}, warn: () => {}, error: () => {} },
      });
      try {
        const created = await ownLayout.start({
          cookieHeader: undefined,
          ip: '10.4.4.4',
          ajax: false,
        });
        created.set('node', true);
        await ownLayout.commit(created);
        const row = await fixture.db.row(fixture.table, created.id);
        assert.equal(row?.ip, '10.4.4.4');
        // A PHP row reads as corrupt in keepsake's layout: a new session starts.
        const php = await ownLayout.start({
          cookieHeader: `ci_session=${id}`,
          ip: '127.0.0.1',
          ajax: false,
        });
        assert.notEqual(php.id, id);
        await ownLayout.commit(php);
      } finally {
        await ownLayout.shutdown();
      }
    });
  });

  describe(`database in CodeIgniter's layout on ${name}, with matchIP`, { skip }, () => {
    const fixture = shared(true);

    it("shares the session of the address CodeIgniter bound it to, under CodeIgniter's lock of ID and address", async () => {
      const response = await fetch(`${fixture.app.url}/keepsake/login?user=una`);
      assert.equal(response.status, 200, await fixture.app.logs());
      const { id } = (await response.json()) as { id: string };
      const request = (ip: string) => ({ cookieHeader: `ci_session=${id}`, ip, ajax: false });
      const session = await fixture.manager.start(request('127.0.0.1'));
      try {
        assert.deepEqual(session.get('user'), { name: 'una', loggedIn: true });
        assert.equal(await fixture.db.lockAsCodeIgniter(id, '127.0.0.1'), false);
        // Another address is another session, under another lock.
        assert.equal(await fixture.db.lockAsCodeIgniter(id, '10.0.0.1'), true);
        await fixture.db.unlockAsCodeIgniter(id, '10.0.0.1');
      } finally {
        await fixture.manager.commit(session);
      }
      const elsewhere = await fixture.manager.start(request('10.0.0.1'));
      assert.equal(elsewhere.get('user'), null);
      assert.notEqual(elsewhere.id, id);
      await fixture.manager.commit(elsewhere);
    });
  });
}
