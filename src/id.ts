import { randomBytes } from 'node:crypto';

const ID_PATTERN = /^[0-9a-f]{32}$/;

/** A new session ID: 128 random bits as 32 lowercase hex characters, as CodeIgniter 4 issues. */
export function createSessionId(): string {
  return randomBytes(16).toString('hex');
}

/** Only exactly 32 lowercase hex characters are IDs; anything else from a cookie is ignored. */
export function isValidSessionId(value: unknown): value is string {
  return typeof value === 'string' && value.length === 32 && ID_PATTERN.test(value);
}
