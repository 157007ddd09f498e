import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { flagOf, type Reply, ReplyReader } from '../../src/drivers/memcached/reply-reader.js';

/** Every kind of reply the driver reads, values with CRLF and multi-byte characters inside included. */
const STREAM = Buffer.concat([
  Buffer.from('HD c17\r\n'),
  Buffer.from('VA 5 c18 t60\r\nhello\r\n'),
  Buffer.from('EN\r\n'),
  Buffer.from('VA 0 c19\r\n\r\n'),
  Buffer.from('VA 8\r\na\r\nb\r\n\r\n\r\n'),
  Buffer.from(`VA ${Buffer.byteLength('日本🎉')}\r\n日本🎉\r\n`),
  Buffer.from('SERVER_ERROR object too large for cache\r\n'),
  Buffer.from('STAT item_size_max 1048576\r\nSTAT evictions on\r\nEND\r\n'),
  Buffer.from('NS c0\r\nEX\r\nNF\r\nMN\r\nERROR\r\n'),
]);

interface Seen {
  kind: string;
  status?: string;
  flags?: readonly string[];
  value?: string;
  line?: string;
  stats?: Record<string, string>;
}

function plain(reply: Reply): Seen {
  if (reply.kind === 'error') return { kind: 'error', line: reply.line };
  if (reply.kind === 'stats') return { kind: 'stats', stats: Object.fromEntries(reply.stats) };
  return {
    kind: 'meta',
    status: reply.status,
    flags: reply.flags,
    ...(reply.value === undefined ? {} : { value: reply.value.toString('utf8') }),
  };
}

const EXPECTED: Seen[] = [
  { kind: 'meta', status: 'HD', flags: ['c17'] },
  { kind: 'meta', status: 'VA', flags: ['c18', 't60'], value: 'hello' },
  { kind: 'meta', status: 'EN', flags: [] },
  { kind: 'meta', status: 'VA', flags: ['c19'], value: '' },
  { kind: 'meta', status: 'VA', flags: [], value: 'a\r\nb\r\n\r\n' },
  { kind: 'meta', status: 'VA', flags: [], value: '日本🎉' },
  { kind: 'error', line: 'SERVER_ERROR object too large for cache' },
  { kind: 'stats', stats: { item_size_max: '1048576', evictions: 'on' } },
  { kind: 'meta', status: 'NS', flags: ['c0'] },
  { kind: 'meta', status: 'EX', flags: [] },
  { kind: 'meta', status: 'NF', flags: [] },
  { kind: 'meta', status: 'MN', flags: [] },
  { kind: 'error', line: 'ERROR' },
];

function readInChunks(stream: Buffer, cuts: readonly number[]): Seen[] {
  const reader = new ReplyReader();
  const replies: Seen[] = [];
  let from = 0;
  for (const cut of [...cuts, stream.length]) {
    for (const reply of reader.read(stream.subarray(from, cut))) replies.push(plain(reply));
    from = cut;
  }
  return replies;
}

describe('memcached reply reader', () => {
  it('reads every reply the driver uses, whole', () => {
    assert.deepEqual(readInChunks(STREAM, []), EXPECTED);
  });

  it('reads them the same however the bytes are cut into chunks', () => {
    for (let cut = 1; cut < STREAM.length; cut += 1) {
      assert.deepEqual(readInChunks(STREAM, [cut]), EXPECTED, `cut at byte ${cut}`);
    }
    const everyByte = Array.from({ length: STREAM.length - 1 }, (_, index) => index + 1);
    assert.deepEqual(readInChunks(STREAM, everyByte), EXPECTED, 'one byte at a time');
  });

  it('answers a value only once all its bytes are in, copied once into a buffer of its size', () => {
    const value = Buffer.alloc(3 * 65_536 + 7, 'x');
    const reader = new ReplyReader();
    const header = Buffer.from(`VA ${value.length} c5\r\n`);
    assert.deepEqual(reader.read(header), []);
    for (let offset = 0; offset < value.length; offset += 65_536) {
      assert.deepEqual(reader.read(value.subarray(offset, offset + 65_536)), []);
    }
    const [reply] = reader.read(Buffer.from('\r\n'));
    assert.ok(reply?.kind === 'meta');
    assert.equal(flagOf(reply, 'c'), '5');
    assert.ok(reply.value?.equals(value));
  });

  for (const [what, bytes] of [
    ['a value without its CRLF', 'VA 2\r\nabXY'],
    ['a line ending in a bare LF', 'HD\n'],
    ['a reply no meta command gives', 'VALUE k 0 1\r\n'],
    ['a value size that is no number', 'VA x\r\n'],
  ] as const) {
    it(`refuses ${what}, so a connection out of step is dropped, not misread`, () => {
      assert.throws(() => new ReplyReader().read(Buffer.from(bytes)));
    });
  }
});
