import { describe, expect, it } from 'vitest';
import { MemoryTier, entryBytes } from '../../cache/memory-tier.js';

const value = (seed: number) => ({ vector: new Float32Array(384).fill(seed), tokens: 3 });

describe('L1 memory tier', () => {
  it('keeps its calculated bytes within the bound and evicts the oldest entries first', () => {
    const bound = 64 * 1024;
    const tier = new MemoryTier(bound);
    const perEntry = entryBytes('key-0000', value(0));
    for (let i = 0; i < 2000; i++) {
      tier.set(`key-${String(i).padStart(4, '0')}`, value(i));
      expect(tier.bytes).toBeLessThanOrEqual(bound);
    }
    expect(tier.entries).toBe(Math.floor(bound / perEntry));
    expect(tier.get('key-0000')).toBeUndefined();
    expect(tier.get('key-1000')).toBeUndefined();
    expect(tier.get('key-1999')?.vector[0]).toBe(1999);
  });

  it('keeps a recently read entry over older unread ones', () => {
    const tier = new MemoryTier(entryBytes('a', value(0)) * 3);
    tier.set('a', value(1));
    tier.set('b', value(2));
    tier.set('c', value(3));
    tier.get('a');
    tier.set('d', value(4));
    expect(tier.get('a')).toBeDefined();
    expect(tier.get('b')).toBeUndefined();
  });

  it('stores nothing when the bound is 0', () => {
    const tier = new MemoryTier(0);
    tier.set('a', value(1));
    expect(tier.get('a')).toBeUndefined();
    expect(tier.bytes).toBe(0);
  });
});
