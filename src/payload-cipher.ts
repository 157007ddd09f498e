import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { SessionConfigError } from './errors.js';

/** Envelope marker: the format version, so another scheme can follow without ambiguity. */
const PREFIX = 'ks1.';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
/** Key identifiers: the first bytes of the key's SHA-256, enough to pick a key, too few to say anything about it. */
const KEY_ID_BYTES = 4;

interface CipherKey {
  readonly id: string;
  readonly secret: Buffer;
}

/**
 * Encryption at rest: AES-256-GCM from node:crypto, with the session ID as additional
 * authenticated data, so a payload copied under another session ID does not decrypt. The first key
 * encrypts; any key decrypts (each envelope names its key by a short identifier), so keys rotate by
 * putting a new one first — sessions are re-encrypted with it at their next write.
 *
 * Envelope: `ks1.<key id>.<iv>.<ciphertext + tag>` (base64url).
 */
export class PayloadCipher {
  readonly #keys: readonly CipherKey[];

  constructor(keys: readonly (string | Uint8Array)[]) {
    if (!Array.isArray(keys) || keys.length === 0) {
      throw new SessionConfigError(
        'encryption.keys',
        'expected a list of at least one key: 32 random bytes, as a Buffer or as base64/hex text (e.g. `openssl rand -base64 32`).',
      );
    }
    this.#keys = keys.map((key, index) => {
      const secret = keyBytes(key, index);
      return {
        id: createHash('sha256')
          .update(secret)
          .digest('base64url')
          .slice(0, KEY_ID_BYTES * 2),
        secret,
      };
    });
  }

  /** The envelope of `plaintext` for session `sessionId`, with the first key. */
  encrypt(plaintext: string, sessionId: string): string {
    const key = this.#keys[0] as CipherKey;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key.secret, iv);
    cipher.setAAD(Buffer.from(sessionId, 'utf8'));
    const body = Buffer.concat([
      cipher.update(plaintext, 'utf8'),
      cipher.final(),
      cipher.getAuthTag(),
    ]);
    return `${PREFIX}${key.id}.${iv.toString('base64url')}.${body.toString('base64url')}`;
  }

  /**
   * The plaintext of an envelope made for `sessionId`, and whether it was made with an older key
   * (then it should be written again). Throws a TypeError naming why when it does not decrypt.
   */
  decrypt(envelope: string, sessionId: string): { plaintext: string; staleKey: boolean } {
    if (!envelope.startsWith(PREFIX))
      throw new TypeError('the payload is not encrypted (encryption is on)');
    const [keyId = '', ivText = '', bodyText = ''] = envelope.slice(PREFIX.length).split('.');
    const index = this.#keys.findIndex((key) => key.id === keyId);
    if (index === -1)
      throw new TypeError('the payload was encrypted with a key that is not configured');
    const iv = Buffer.from(ivText, 'base64url');
    const body = Buffer.from(bodyText, 'base64url');
    if (iv.length !== IV_BYTES || body.length < TAG_BYTES)
      throw new TypeError('the encrypted payload is truncated');
    const decipher = createDecipheriv('aes-256-gcm', (this.#keys[index] as CipherKey).secret, iv);
    decipher.setAAD(Buffer.from(sessionId, 'utf8'));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    try {
      const plaintext = Buffer.concat([
        decipher.update(body.subarray(0, body.length - TAG_BYTES)),
        decipher.final(),
      ]).toString('utf8');
      return { plaintext, staleKey: index > 0 };
    } catch {
      throw new TypeError(
        'the encrypted payload does not authenticate (altered, or copied from another session)',
      );
    }
  }
}

function keyBytes(key: string | Uint8Array, index: number): Buffer {
  const fail = (what: string) =>
    new SessionConfigError(
      `encryption.keys[${index}]`,
      `${what}; a key is 32 random bytes, as a Buffer or as base64 or hex text (e.g. \`openssl rand -base64 32\`).`,
    );
  if (key instanceof Uint8Array) {
    if (key.length !== KEY_BYTES) throw fail(`it is ${key.length} bytes`);
    return Buffer.from(key);
  }
  if (typeof key !== 'string') throw fail('it is neither bytes nor text');
  const decoded = /^[0-9a-f]{64}$/i.test(key)
    ? Buffer.from(key, 'hex')
    : Buffer.from(key, 'base64');
  if (decoded.length !== KEY_BYTES) throw fail(`it decodes to ${decoded.length} bytes`);
  return decoded;
}
