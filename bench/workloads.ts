/**
 * The four workloads of the bench: the routes every app serves (Express and Fastify alike), which
 * prepared session each request carries and whether it writes. The timed load, the lost-update
 * check and the counted phase all plan their requests here, so they send the same ones.
 */

// The order they run in one server: new-visitors last, because keepsake leaves a session in the
// store for each visitor, which would make the store larger for the workloads after it.
export const WORKLOAD_NAMES = ['counter', 'read-mostly', 'large-session', 'new-visitors'] as const;
export type WorkloadName = (typeof WORKLOAD_NAMES)[number];

/** In read-mostly and large-session, one request in this many writes. */
export const WRITE_EVERY = 10;

/** Serialized size of the large session's payload. */
export const LARGE_SESSION_BYTES = 20 * 1024;

export interface Workload {
  name: WorkloadName;
  /** One sentence for the report. */
  summary: string;
  /** The request that opens one prepared session; null when the visitors bring no cookie. */
  openPath: string | null;
  /** Which requests write: every one, one in WRITE_EVERY, or none. */
  writes: 'every' | 'some' | 'none';
  /** The request that only reads (none in counter). */
  readPath: string | null;
  /** The request that increments the counter (none in new-visitors). */
  writePath: string | null;
}

export const WORKLOADS: Record<WorkloadName, Workload> = {
  counter: {
    name: 'counter',
    summary: 'every request reads a counter from its session and writes it back plus one',
    openPath: '/counter',
    writes: 'every',
    readPath: null,
    writePath: '/counter',
  },
  'read-mostly': {
    name: 'read-mostly',
    summary: `one request in ${WRITE_EVERY} increments the counter; the others only read it and change nothing`,
    openPath: '/read-mostly?write=1',
    writes: 'some',
    readPath: '/read-mostly',
    writePath: '/read-mostly?write=1',
  },
  'large-session': {
    name: 'large-session',
    summary: `every session holds a ${LARGE_SESSION_BYTES / 1024} KB payload (stored when the session is prepared); one request in ${WRITE_EVERY} increments the counter beside it, the others only read`,
    openPath: '/large?setup=1',
    writes: 'some',
    readPath: '/large',
    writePath: '/large?write=1',
  },
  'new-visitors': {
    name: 'new-visitors',
    summary:
      'requests without a cookie that read the session and store nothing (the peers run with saveUninitialized: false, keepsake as configured by default)',
    openPath: null,
    writes: 'none',
    readPath: '/new-visitor',
    writePath: null,
  },
};

/** A read-only request on an existing session, answering its counter. */
export const COUNT_PATH = '/read-mostly';

export interface PlannedRequest {
  path: string;
  /** Index of the prepared session it carries, or null for a visitor without a cookie. */
  session: number | null;
  writes: boolean;
}

/**
 * Request `index` of a run over `sessionCount` prepared sessions, which take turns. In the
 * workloads that write one request in WRITE_EVERY, the write moves to another session each turn, so
 * that every session is written once in WRITE_EVERY of its own requests (with one session: requests
 * 0, 10, 20, …).
 */
export function planRequest(
  workload: Workload,
  index: number,
  sessionCount: number,
): PlannedRequest {
  const session = workload.openPath === null || sessionCount === 0 ? null : index % sessionCount;
  const turn = Math.floor(index / Math.max(1, sessionCount));
  const writes =
    workload.writes === 'every' ||
    (workload.writes === 'some' && (turn + (session ?? 0)) % WRITE_EVERY === 0);
  const path = writes ? workload.writePath : workload.readPath;
  if (path === null) throw new Error(`bench: ${workload.name} has no such request`);
  return { path, session, writes };
}

/** How a route reads and writes the request's session (none for the bare apps). */
export interface SessionAccess {
  get(request: unknown, key: string): unknown;
  set(request: unknown, key: string, value: unknown): void;
}

type MethodSession = {
  session: { get(key: string): unknown; set(key: string, value: unknown): void };
};

/** Sessions with get()/set(): keepsake, @fastify/session, the floor middleware. */
export const methodSession: SessionAccess = {
  get: (request, key) => (request as MethodSession).session.get(key),
  set: (request, key, value) => {
    (request as MethodSession).session.set(key, value);
  },
};

type PropertySession = { session: Record<string, unknown> };

/** express-session: the data are plain properties of req.session. */
export const propertySession: SessionAccess = {
  get: (request, key) => (request as PropertySession).session[key],
  set: (request, key, value) => {
    (request as PropertySession).session[key] = value;
  },
};

export interface Answer {
  status: number;
  body: { count: number } | { error: string };
}

type RouteHandler = (session: SessionAccess | null, request: unknown, url: string) => Answer;

function counterOf(session: SessionAccess | null, request: unknown): number {
  return session === null ? 0 : Number(session.get(request, 'count') ?? 0);
}

function increment(session: SessionAccess | null, request: unknown): Answer {
  const count = counterOf(session, request) + 1;
  session?.set(request, 'count', count);
  return { status: 200, body: { count } };
}

/**
 * Cart-like records, about LARGE_SESSION_BYTES as JSON: the kind of data that makes a session
 * large. Their tokens are pseudo-random hex, so that a store's compression (PostgreSQL's TOAST)
 * cannot shrink the payload to a fraction of its size; the sequence is fixed, so that every server
 * process, keepsake's and the peer's, stores the same bytes.
 */
function largePayload(bytes: number): object[] {
  let state = 0x9e3779b9;
  const hex = (length: number) => {
    let text = '';
    while (text.length < length) {
      // xorshift32
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      text += (state >>> 0).toString(16).padStart(8, '0');
    }
    return text.slice(0, length);
  };
  const records: object[] = [];
  while (JSON.stringify(records).length < bytes) {
    const index = records.length + 1;
    records.push({
      sku: `SKU-${String(index).padStart(6, '0')}`,
      name: `Item ${index}`,
      quantity: (index % 5) + 1,
      price: Math.round(index * 137.31) / 100,
      token: hex(64),
      note: hex(48),
    });
  }
  return records;
}

const payload = largePayload(LARGE_SESSION_BYTES);

/** The routes every app serves, by path (the query only says whether to write or set up). */
export const ROUTES: Record<string, RouteHandler> = {
  '/counter': (session, request) => increment(session, request),
  '/read-mostly': (session, request, url) =>
    url.endsWith('?write=1')
      ? increment(session, request)
      : { status: 200, body: { count: counterOf(session, request) } },
  '/large': (session, request, url) => {
    if (url.endsWith('?setup=1')) {
      session?.set(request, 'payload', payload);
      return increment(session, request);
    }
    const stored = session?.get(request, 'payload');
    if (session !== null && !(Array.isArray(stored) && stored.length === payload.length)) {
      return { status: 500, body: { error: 'the session lost its payload' } };
    }
    return url.endsWith('?write=1')
      ? increment(session, request)
      : { status: 200, body: { count: counterOf(session, request) } };
  },
  '/new-visitor': (session, request) => ({
    status: 200,
    body: { count: counterOf(session, request) },
  }),
};

/** The workloads named in BENCH_WORKLOADS (comma-separated), in the order they run; all by default. */
export function selectedWorkloads(list = process.env.BENCH_WORKLOADS): Workload[] {
  const wanted = (list ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  const unknown = wanted.filter((name) => !(WORKLOAD_NAMES as readonly string[]).includes(name));
  if (unknown.length > 0) {
    throw new Error(
      `bench: unknown workload ${unknown.join(', ')} in BENCH_WORKLOADS (known: ${WORKLOAD_NAMES.join(', ')})`,
    );
  }
  return WORKLOAD_NAMES.filter((name) => wanted.length === 0 || wanted.includes(name)).map(
    (name) => WORKLOADS[name],
  );
}
