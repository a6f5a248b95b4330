// API keys (SPEC.md §7): `Authorization: Bearer <key>` checked against TWINLANE_API_KEYS in constant
// time. Keys are held and compared only as SHA-256 digests, so every comparison has the same length
// and every configured key is compared, whichever matches; a key never leaves this module except as
// a short digest-derived client id, which is what rate limits, logs and metrics may see.
import { createHash, timingSafeEqual } from 'node:crypto';
import { TwinlaneError } from './errors.js';

export type AuthFailure = 'missing' | 'malformed' | 'wrong';

const digest = (key: string): Buffer => createHash('sha256').update(key, 'utf8').digest();

export class ApiKeys {
  readonly #digests: readonly Buffer[];

  constructor(keys: readonly string[]) {
    if (keys.length === 0) throw new Error('ApiKeys needs at least one key. This is a bug.');
    this.#digests = keys.map(digest);
  }

  /**
   * The client id of the key an `Authorization` header carries (`key:` and 16 hex digits of its
   * digest), or a 401 saying what was wrong; `onFailure` learns the reason for metrics.
   */
  verify(authorization: string | undefined, onFailure?: (reason: AuthFailure) => void): string {
    const fail = (reason: AuthFailure, message: string): never => {
      onFailure?.(reason);
      throw new TwinlaneError('invalid_api_key', message);
    };
    if (authorization === undefined || authorization === '') {
      return fail('missing', 'An API key is required: send it as "Authorization: Bearer <key>".');
    }
    const match = /^Bearer +(\S+) *$/i.exec(authorization);
    if (!match) return fail('malformed', 'The Authorization header must be "Bearer <key>".');
    const presented = digest(match[1]!);
    let found = false;
    for (const known of this.#digests) found = timingSafeEqual(presented, known) || found;
    if (!found) return fail('wrong', 'The API key is not valid.');
    return `key:${presented.toString('hex', 0, 8)}`;
  }
}
