import { createHash, createHmac } from 'node:crypto';
import { SessionConfigError } from './errors.js';

const ID_BYTES = 16;

/**
 * What a session is stored under: its ID, or with `hashIds` HMAC-SHA-256(secret, ID) cut to 32 hex
 * digits — the shape of an ID, so every driver stores it as it would an ID. Whoever reads the store
 * (a dump, a leaked table, a backup) then finds no value they could put in a cookie; keepsake,
 * which knows the secret, maps each cookie to its record, as Rails's
 * `Rack::Session::SessionId#private_id` does.
 */
export class StorageIds {
  readonly #secret: Buffer | undefined;

  constructor(secret?: string | Uint8Array) {
    if (secret === undefined) return;
    if (typeof secret !== 'string' && !(secret instanceof Uint8Array)) {
      throw new SessionConfigError(
        'hashIds.secret',
        'expected a string or bytes of at least 32 bytes, e.g. `openssl rand -base64 32`.',
      );
    }
    const bytes = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret);
    if (bytes.length < 32) {
      throw new SessionConfigError(
        'hashIds.secret',
        `a secret of at least 32 bytes is needed to hash session IDs, got ${bytes.length}; e.g. \`openssl rand -base64 32\`.`,
      );
    }
    this.#secret = bytes;
  }

  /** The store key of session `id`. */
  of(id: string): string {
    if (this.#secret === undefined) return id;
    return this.#mac(`id\0${id}`).toString('hex', 0, ID_BYTES);
  }

  /**
   * The store key of a user's session index: the shape of a store key, so every driver stores it
   * as a session, and from a hash domain of its own, so it is never the key of a session. With
   * hashIds it is keyed by the secret, so no cookie leads to it; without, a cookie naming it is
   * refused by the lifecycle (the record is not a session).
   */
  indexKeyOf(userId: string): string {
    const text = `user\0${userId}`;
    if (this.#secret === undefined)
      return createHash('sha256').update(`keepsake\0${text}`).digest('hex').slice(0, 32);
    return this.#mac(text).toString('hex', 0, ID_BYTES);
  }

  /**
   * The new ID as written in the old ID's forwarding record: with hashed IDs, masked by a value
   * only someone holding both the secret and the old ID can compute, so the record gives a reader
   * of the store no usable cookie either. Masking is its own inverse.
   */
  forward(oldId: string, newId: string): string {
    if (this.#secret === undefined) return newId;
    const mask = this.#mac(`forward\0${oldId}`);
    const bytes = Buffer.from(newId, 'hex');
    for (let index = 0; index < bytes.length; index += 1)
      bytes[index] = (bytes[index] as number) ^ (mask[index] as number);
    return bytes.toString('hex');
  }

  #mac(text: string): Buffer {
    return createHmac('sha256', this.#secret as Buffer)
      .update(text)
      .digest();
  }
}
