import { describe, expect, it } from 'vitest';
import { headerLines } from '../../server/wire.js';

describe('headerLines (a kept answer’s headers, written with one writeHeader call)', () => {
  it('makes the first name, then its value and every other line after CRLFs', () => {
    const lines = headerLines({ 'content-type': 'application/json', 'x-cache-hits': '2', 'x-queue-time': '0.00' });
    expect(lines!.name.toString('latin1')).toBe('content-type');
    // uWS writes `name: rest\r\n`: exactly the three lines.
    expect(`${lines!.name.toString('latin1')}: ${lines!.rest.toString('latin1')}\r\n`).toBe(
      'content-type: application/json\r\nx-cache-hits: 2\r\nx-queue-time: 0.00\r\n',
    );
  });

  it('refuses what a header line cannot carry, and nothing at all', () => {
    expect(headerLines({})).toBeNull();
    expect(headerLines({ 'x-a': 'one\r\nx-injected: 1' })).toBeNull();
    expect(headerLines({ 'x-a': 'one\n' })).toBeNull();
    expect(headerLines({ 'x-a\r\nb': 'one' })).toBeNull();
    expect(headerLines({ 'x-a': 'café' })).toBeNull();
  });
});
