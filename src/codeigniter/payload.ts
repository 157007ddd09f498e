/**
 * keepsake's stored payloads (JSON, see serializer.ts) translated to and from PHP's session
 * encoding, for stores laid out as CodeIgniter's: the driver speaks PHP to the store and JSON to
 * keepsake's core, so the core's rules (what changed, what to write) stay the same in every layout.
 */
import { SessionValueError } from '../errors.js';
import { deserialize, serialize } from '../serializer.js';
import {
  decodePhpSession,
  encodePhpSession,
  PhpSessionDecodeError,
} from './php-session-encoding.js';

/**
 * The key of keepsake's forwarding record, left under an old ID after a regeneration. In
 * CodeIgniter's layout it is stored beside the session's data rather than instead of it, because
 * CodeIgniter follows no forwarding record: a PHP request still carrying the old cookie keeps
 * seeing the data (as CodeIgniter's own regenerate(false) leaves it), while keepsake follows the
 * record to the new ID.
 */
export const FORWARD_KEY = '__keepsake_moved';

/** What a store in CodeIgniter's layout found, for the core: a payload, or why it is unusable. */
export type TranslatedPayload = { readonly payload: string } | { readonly unreadable: string };

/**
 * keepsake's payload as PHP session data. A forwarding record is merged into the data the old ID
 * held (`previous`, as read under the lock), so PHP still finds that data there.
 * Throws SessionValueError for what PHP cannot hold (a Date, say).
 */
export function phpSessionOf(payload: string, previous: Uint8Array | null): Buffer {
  const data = deserialize(payload);
  if (data.size === 1 && data.has(FORWARD_KEY) && previous !== null && previous.length > 0) {
    let kept: Map<string, unknown> | undefined;
    try {
      kept = decodePhpSession(previous);
    } catch {
      // Data keepsake cannot read is not kept: the record alone is written.
    }
    if (kept !== undefined) {
      kept.delete(FORWARD_KEY);
      kept.set(FORWARD_KEY, data.get(FORWARD_KEY));
      return Buffer.from(encodePhpSession(kept), 'utf8');
    }
  }
  return Buffer.from(encodePhpSession(data), 'utf8');
}

/**
 * PHP session data as keepsake's payload: the forwarding record alone when there is one (so the
 * core follows it), else all the data. PHP objects throw SessionValueError, so that the session
 * is neither used nor overwritten; data that is not PHP session data at all is unreadable (the
 * core replaces it, as it does any corrupt record).
 */
export function payloadOfPhpSession(bytes: Uint8Array, where: string): TranslatedPayload {
  let data: Map<string, unknown>;
  try {
    data = decodePhpSession(bytes);
  } catch (error) {
    if (error instanceof PhpSessionDecodeError && error.message.includes('found a PHP ')) {
      throw new SessionValueError(
        `keepsake: the CodeIgniter session in ${where} holds a value keepsake cannot read (${error.message.replace(/^keepsake: /, '')}). ` +
          'Store only null, booleans, numbers, strings and arrays in a session shared with Node (an object as an array, a date as a timestamp); the session was left as it is.',
      );
    }
    return { unreadable: error instanceof Error ? error.message : String(error) };
  }
  const forward = data.get(FORWARD_KEY);
  if (forward !== undefined && data.size > 1) {
    return { payload: serialize(new Map([[FORWARD_KEY, forward]]), false) };
  }
  return { payload: serialize(data, false) };
}
