// The in-process L1: an LRU bounded in bytes, so its memory use is a number an operator sets rather
// than an entry count whose cost depends on the model's dims.
import { LRUCache } from 'lru-cache';
import type { CachedVector } from './protocol.js';

/** What one entry costs beyond its vector: the key (UTF-16) and lru-cache's per-entry bookkeeping. */
const ENTRY_OVERHEAD_BYTES = 96;

export function entryBytes(key: string, value: CachedVector): number {
  return value.vector.byteLength + key.length * 2 + ENTRY_OVERHEAD_BYTES;
}

/** `V` lets the owner keep its own bookkeeping beside each vector (the actor's last Redis refresh). */
export class MemoryTier<V extends CachedVector = CachedVector> {
  readonly #lru: LRUCache<string, V> | null;

  constructor(maxBytes: number) {
    this.#lru =
      maxBytes > 0
        ? new LRUCache<string, V>({ maxSize: maxBytes, sizeCalculation: (value, key) => entryBytes(key, value) })
        : null;
  }

  get(key: string): V | undefined {
    return this.#lru?.get(key);
  }

  /** Whether `key` is held, without marking it recently used. */
  has(key: string): boolean {
    return this.#lru?.has(key) ?? false;
  }

  set(key: string, value: V): void {
    this.#lru?.set(key, value);
  }

  get entries(): number {
    return this.#lru?.size ?? 0;
  }

  get bytes(): number {
    return this.#lru?.calculatedSize ?? 0;
  }
}
