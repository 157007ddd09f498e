/**
 * One long-lived `php` process that answers JSON lines, so property tests can ask the real PHP
 * thousands of questions (session_encode, session_decode, serialize, unserialize) quickly.
 * Payloads travel as base64 because PHP strings are bytes.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';
import { commandSkip } from '../helpers/services.js';

/** Skip reason when `php` is missing (an error under KEEPSAKE_REQUIRE_SERVICES=1). */
export function phpSkip(): Promise<string | false> {
  return commandSkip('PHP', 'php', ['-v']);
}

export interface PhpDecodeAnswer {
  /** Did PHP's session_decode() / unserialize() accept the payload? */
  readonly accepted: boolean;
  /** Is what PHP decoded `===` to json_decode(expected, true)? (Same types, keys and order.) */
  readonly identical: boolean;
  /** What PHP decoded, through json_encode, for failure messages. */
  readonly decoded: unknown;
  readonly warnings: readonly string[];
}

export interface PhpEncodeAnswer {
  /** The bytes PHP wrote, or null when it refused (session_encode() returned false). */
  readonly payload: Buffer | null;
  readonly warnings: readonly string[];
}

export interface PhpProcess {
  /** `$_SESSION = json_decode(toPhpJson(data), true); session_encode()`. */
  sessionEncode(data: ReadonlyMap<string, unknown>): Promise<PhpEncodeAnswer>;
  /** `session_decode(payload)` into an empty session, compared with `expected`. */
  sessionDecode(
    payload: Uint8Array,
    expected: ReadonlyMap<string, unknown>,
  ): Promise<PhpDecodeAnswer>;
  /** `serialize(json_decode(toPhpJson(value), true))`. */
  serialize(value: unknown): Promise<PhpEncodeAnswer>;
  /** `unserialize(payload, ['allowed_classes' => false])`, compared with `expected`. */
  unserialize(payload: Uint8Array, expected: unknown): Promise<PhpDecodeAnswer>;
  /** Runs PHP statements that `return` a string (test-only code); answers its bytes. */
  evaluate(code: string): Promise<Buffer>;
  close(): Promise<void>;
}

/**
 * JSON that PHP's json_decode() reads back as the PHP value keepsake's encoder maps `value` to:
 * numbers that keepsake writes as `d:` carry a fraction or exponent so PHP makes them floats.
 */
export function toPhpJson(value: unknown): string {
  if (typeof value === 'number') {
    const text = JSON.stringify(value);
    if (Number.isSafeInteger(value) || /[.eE]/.test(text)) return text;
    return `${text}.0`;
  }
  if (Array.isArray(value)) return `[${value.map(toPhpJson).join(',')}]`;
  if (value instanceof Map) {
    const members = [...value].map(([key, item]) => `${JSON.stringify(key)}:${toPhpJson(item)}`);
    return `{${members.join(',')}}`;
  }
  if (typeof value === 'object' && value !== null) {
    const record = value as Record<string, unknown>;
    const members = Object.keys(record).map(
      (key) => `${JSON.stringify(key)}:${toPhpJson(record[key])}`,
    );
    return `{${members.join(',')}}`;
  }
  return JSON.stringify(value);
}

const SCRIPT = String.raw`
ini_set('session.use_cookies', '0');
ini_set('session.use_only_cookies', '0');
ini_set('session.cache_limiter', '');
ini_set('session.use_strict_mode', '0');
ini_set('session.serialize_handler', 'php');
ini_set('serialize_precision', '-1');

final class KeepsakeMemoryHandler implements SessionHandlerInterface
{
    public function open(string $path, string $name): bool { return true; }
    public function close(): bool { return true; }
    public function read(string $id): string|false { return ''; }
    public function write(string $id, string $data): bool { return true; }
    public function destroy(string $id): bool { return true; }
    public function gc(int $max_lifetime): int|false { return 0; }
}
session_set_save_handler(new KeepsakeMemoryHandler(), false);

$warnings = [];
set_error_handler(function (int $level, string $message) use (&$warnings): bool {
    $warnings[] = $message;
    return true;
});

function keepsake_data(array $request): mixed
{
    return json_decode($request['data'], true, 512, JSON_THROW_ON_ERROR);
}

function keepsake_encoded(string|false $payload): array
{
    return ['payload' => $payload === false ? null : base64_encode($payload)];
}

while (($line = fgets(STDIN)) !== false) {
    $warnings = [];
    try {
        $request = json_decode($line, true, 512, JSON_THROW_ON_ERROR);
        if (session_status() !== PHP_SESSION_ACTIVE) {
            session_start();
        }
        switch ($request['op']) {
            case 'session_encode':
                $_SESSION = keepsake_data($request);
                $payload = session_encode();
                // session_encode() answers false for an empty session, which is stored as ''.
                $response = keepsake_encoded($payload === false && $_SESSION === [] ? '' : $payload);
                break;
            case 'session_decode':
                $_SESSION = [];
                $accepted = session_decode(base64_decode($request['payload'], true));
                $decoded = $accepted ? $_SESSION : null;
                $response = [
                    'accepted' => $accepted,
                    'identical' => $accepted && $decoded === keepsake_data($request),
                    'decoded' => $decoded,
                ];
                break;
            case 'serialize':
                $response = keepsake_encoded(serialize(keepsake_data($request)));
                break;
            case 'unserialize':
                $payload = base64_decode($request['payload'], true);
                $value = unserialize($payload, ['allowed_classes' => false]);
                $accepted = $value !== false || $payload === 'b:0;';
                $response = [
                    'accepted' => $accepted,
                    'identical' => $accepted && $value === keepsake_data($request),
                    'decoded' => $accepted ? $value : null,
                ];
                break;
            case 'evaluate':
                $response = ['payload' => base64_encode((string) eval($request['code']))];
                break;
            default:
                $response = ['error' => 'unknown op ' . $request['op']];
        }
    } catch (Throwable $error) {
        $response = ['error' => get_class($error) . ': ' . $error->getMessage()];
    }
    $response['warnings'] = $warnings;
    fwrite(STDOUT, json_encode(
        $response,
        JSON_INVALID_UTF8_SUBSTITUTE | JSON_PARTIAL_OUTPUT_ON_ERROR | JSON_PRESERVE_ZERO_FRACTION,
    ) . "\n");
}
`;

interface RawAnswer {
  payload?: string | null;
  accepted?: boolean;
  identical?: boolean;
  decoded?: unknown;
  error?: string;
  warnings: string[];
}

/** Starts `php` (the caller checked phpSkip()); close() ends it. */
export function startPhpProcess(): PhpProcess {
  const child: ChildProcessWithoutNullStreams = spawn(
    'php',
    ['-d', 'display_errors=stderr', '-d', 'memory_limit=512M', '-r', SCRIPT],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const pending: { resolve(answer: RawAnswer): void; reject(error: Error): void }[] = [];
  let stderr = '';
  let buffered = '';
  let exited = false;
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    let newline = buffered.indexOf('\n');
    while (newline !== -1) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      const waiter = pending.shift();
      if (waiter === undefined) throw new Error(`php answered without a question: ${line}`);
      const answer = JSON.parse(line) as RawAnswer;
      if (answer.error === undefined) waiter.resolve(answer);
      else waiter.reject(new Error(`php: ${answer.error}`));
      newline = buffered.indexOf('\n');
    }
  });
  child.once('exit', (code, signal) => {
    exited = true;
    const error = new Error(`php exited (${code ?? signal}) with questions pending: ${stderr}`);
    for (const waiter of pending.splice(0)) waiter.reject(error);
  });

  const ask = (request: Record<string, unknown>) =>
    new Promise<RawAnswer>((resolve, reject) => {
      if (exited) return reject(new Error(`php is not running: ${stderr}`));
      pending.push({ resolve, reject });
      child.stdin.write(`${JSON.stringify(request)}\n`);
    });
  const encoded = (answer: RawAnswer): PhpEncodeAnswer => ({
    payload:
      answer.payload === null || answer.payload === undefined
        ? null
        : Buffer.from(answer.payload, 'base64'),
    warnings: answer.warnings,
  });
  const decoded = (answer: RawAnswer): PhpDecodeAnswer => ({
    accepted: answer.accepted === true,
    identical: answer.identical === true,
    decoded: answer.decoded,
    warnings: answer.warnings,
  });

  return {
    async sessionEncode(data) {
      return encoded(await ask({ op: 'session_encode', data: toPhpJson(data) }));
    },
    async sessionDecode(payload, expected) {
      const request = {
        op: 'session_decode',
        payload: Buffer.from(payload).toString('base64'),
        data: toPhpJson(expected),
      };
      return decoded(await ask(request));
    },
    async serialize(value) {
      return encoded(await ask({ op: 'serialize', data: toPhpJson(value) }));
    },
    async unserialize(payload, expected) {
      const request = {
        op: 'unserialize',
        payload: Buffer.from(payload).toString('base64'),
        data: toPhpJson(expected),
      };
      return decoded(await ask(request));
    },
    async evaluate(code) {
      const answer = await ask({ op: 'evaluate', code });
      return Buffer.from(answer.payload ?? '', 'base64');
    },
    async close() {
      if (exited) return;
      const exit = once(child, 'exit');
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exit;
      clearTimeout(timer);
    },
  };
}
