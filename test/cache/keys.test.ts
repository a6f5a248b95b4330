import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { imageKey, textKey } from '../../cache/index.js';

const sha = (content: string | Uint8Array) => createHash('sha256').update(content).digest('hex');

describe('cache keys', () => {
  it('formats text keys as {prefix}:{modelId}:{n0|n1}:{sha256(text)}', () => {
    const key = textKey('twinlane', 'sentence-transformers/all-MiniLM-L6-v2', true, 'héllo 🎉');
    expect(key).toBe(`twinlane:sentence-transformers/all-MiniLM-L6-v2:n1:${sha('héllo 🎉')}`);
    expect(key).toMatch(/^twinlane:[^:]+:n1:[0-9a-f]{64}$/);
    // The text is hashed as UTF-8.
    expect(key.endsWith(sha(Buffer.from('héllo 🎉', 'utf8')))).toBe(true);
  });

  it('formats image keys as {prefix}:{modelId}:image:{n0|n1}:{sha256(bytes)}', () => {
    const bytes = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]);
    expect(imageKey('p', 'Xenova/clip-vit-base-patch32', false, bytes)).toBe(
      `p:Xenova/clip-vit-base-patch32:image:n0:${sha(bytes)}`,
    );
  });

  it('gives normalised and raw vectors of the same text different keys', () => {
    expect(textKey('t', 'm/a', true, 'x')).not.toBe(textKey('t', 'm/a', false, 'x'));
    expect(textKey('t', 'm/a', false, 'x')).toContain(':n0:');
  });

  it('never lets two models share a key', () => {
    expect(textKey('t', 'org/model-a', true, 'same text')).not.toBe(textKey('t', 'org/model-b', true, 'same text'));
    const bytes = new Uint8Array([1, 2, 3]);
    expect(imageKey('t', 'org/model-a', true, bytes)).not.toBe(imageKey('t', 'org/model-b', true, bytes));
  });

  it('keeps text and image keys apart even for identical content', () => {
    const text = 'abc';
    expect(textKey('t', 'm/x', true, text)).not.toBe(imageKey('t', 'm/x', true, Buffer.from(text)));
  });

  it('puts the prefix first so deployments can share a Redis', () => {
    expect(textKey('a', 'm/x', true, 'q').startsWith('a:')).toBe(true);
    expect(textKey('a', 'm/x', true, 'q')).not.toBe(textKey('b', 'm/x', true, 'q'));
  });
});
