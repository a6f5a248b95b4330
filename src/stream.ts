// One streamed request (WebSocket): answered item by item. Items that fail validation are reported
// when the stream is made; `answerCached` reports what L1 or Redis holds without joining or starting
// any computation; `compute` takes the rest a chunk at a time, as the transport's flow control
// allows, and reports each item when its batch finishes. A chunk's misses go through the cache actor
// with `skipRedis` (they were just looked up), so single flight with other requests still holds.
import { RequestCancelledError, type CacheActor, type Cancellation, type ResolvedVector } from '../cache/index.js';
import type { Lane } from '../lanes/index.js';
import { asTwinlaneError, type TwinlaneError } from './errors.js';
import { truncateDims } from './dims.js';
import { cancelledError } from './cancel.js';
import { laneCompute } from './lane-compute.js';

/** The model a stream embeds with: its id and the dims its vectors have. */
export interface StreamModel {
  readonly id: string;
  readonly dims: number;
}

/** Where a stream's answers go, item by item, as each is ready. */
export interface StreamSink {
  vector(index: number, vector: Float32Array, cached: boolean): void;
  error(index: number, error: TwinlaneError): void;
}

/** A request being streamed; see the file header. */
export interface EmbedStream {
  readonly model: StreamModel;
  /** Reports every cached item at once; resolves with the indices still to compute, in order. */
  answerCached(): Promise<number[]>;
  /** Computes `indices` and reports each item as its batch is done; resolves once all are reported. */
  compute(indices: readonly number[], cancellation: Cancellation): Promise<void>;
}

export interface StreamParts<I> {
  readonly cache: CacheActor;
  readonly lane: Lane<I>;
  readonly model: StreamModel;
  /** Dimensions of the answers (Matryoshka truncation happens after the cache). */
  readonly dims: number;
  readonly param: string;
  readonly sink: StreamSink;
  /** Per item: the validation error it is refused with, or null. */
  readonly invalid: readonly (TwinlaneError | null)[];
  /** The item's cache key, or null when it can only be known after fetching (an image URL). */
  readonly key: (index: number) => string | null;
  /** Fetches an unkeyed item and returns its key (errors fail that item only). */
  readonly fetchKey?: (index: number) => Promise<string>;
  readonly item: (index: number) => I;
  /** Items computed around the cache, whose cached answer could be untruthful. */
  readonly bypass: (index: number) => boolean;
  /** Counts answered items by source, for metrics. */
  readonly count: (answers: readonly { readonly source: ResolvedVector['source'] | 'bypass' }[]) => void;
}

export class Stream<I> implements EmbedStream {
  readonly model: StreamModel;
  readonly #parts: StreamParts<I>;
  /** Indices whose key was looked up by answerCached (their Redis lookup is done). */
  readonly #peeked = new Set<number>();

  constructor(parts: StreamParts<I>) {
    this.model = parts.model;
    this.#parts = parts;
    parts.invalid.forEach((error, index) => {
      if (error) parts.sink.error(index, error);
    });
  }

  async answerCached(): Promise<number[]> {
    const { cache, invalid, key, bypass, sink, dims, model } = this.#parts;
    const lookup: number[] = [];
    const rest: number[] = [];
    invalid.forEach((error, index) => {
      if (error) return;
      if (key(index) !== null && !bypass(index)) lookup.push(index);
      else rest.push(index);
    });
    if (lookup.length === 0) return rest;
    const found = await cache.peek(
      lookup.map((i) => key(i)!),
      model.dims,
    );
    const hits: { source: 'l1' | 'redis' }[] = [];
    lookup.forEach((index, k) => {
      const hit = found[k];
      this.#peeked.add(index);
      if (!hit) {
        rest.push(index);
        return;
      }
      hits.push({ source: hit.source });
      sink.vector(index, truncateDims(hit.vector, dims), true);
    });
    this.#parts.count(hits);
    return rest.sort((a, b) => a - b);
  }

  async compute(indices: readonly number[], cancellation: Cancellation): Promise<void> {
    const keyed = await this.#keys(indices);
    const peeked = keyed.filter(({ index }) => this.#peeked.has(index));
    const fresh = keyed.filter(({ index }) => !this.#peeked.has(index) && !this.#parts.bypass(index));
    const bypassed = keyed.filter(({ index }) => this.#parts.bypass(index));
    await Promise.all([
      this.#resolve(peeked, cancellation, true),
      this.#resolve(fresh, cancellation, false),
      this.#computeAround(
        bypassed.map((k) => k.index),
        cancellation,
      ),
    ]);
  }

  /** Keys for `indices`, fetching unkeyed items (a failed fetch is reported and leaves the chunk). */
  async #keys(indices: readonly number[]): Promise<{ index: number; key: string }[]> {
    const { key, fetchKey, sink } = this.#parts;
    const keyed = await Promise.all(
      indices.map(async (index) => {
        const known = key(index);
        if (known !== null || !fetchKey) return { index, key: known ?? '' };
        try {
          return { index, key: await fetchKey(index) };
        } catch (error) {
          sink.error(index, asTwinlaneError(error));
          return null;
        }
      }),
    );
    return keyed.filter((k): k is { index: number; key: string } => k !== null);
  }

  async #resolve(
    items: readonly { index: number; key: string }[],
    cancellation: Cancellation,
    skipRedis: boolean,
  ): Promise<void> {
    if (items.length === 0) return;
    const { cache, lane, model, param } = this.#parts;
    const compute = laneCompute(
      lane,
      (k) => this.#parts.item(items[k]!.index),
      (k) => `${param}[${items[k]!.index}]`,
    );
    const results = cache.resolve(
      items.map((i) => i.key),
      compute,
      { dims: model.dims, cancellation, skipRedis },
    );
    await this.#report(
      items.map((i) => i.index),
      results,
    );
  }

  /** Items whose cached answer could be untruthful (truncate:false over max tokens): computed directly. */
  async #computeAround(indices: readonly number[], cancellation: Cancellation): Promise<void> {
    if (indices.length === 0) return;
    const { lane, param } = this.#parts;
    const compute = laneCompute(
      lane,
      (k) => this.#parts.item(indices[k]!),
      (k) => `${param}[${indices[k]}]`,
    );
    const results = compute(
      indices.map((_, k) => k),
      { unwanted: () => cancellation.cancelled },
    ).map(async (promise): Promise<ResolvedVector> => {
      const item = await promise;
      if (item.ok) return { ...item.value, timing: item.timing, source: 'computed' };
      throw 'error' in item ? item.error : cancelledError(cancellation);
    });
    await this.#report(indices, results, true);
  }

  /** Sends each result to the sink as it settles; cancelled items are nobody's answer and are not reported. */
  async #report(
    indices: readonly number[],
    results: readonly Promise<ResolvedVector>[],
    bypassed = false,
  ): Promise<void> {
    const { sink, dims } = this.#parts;
    const sources: { source: ResolvedVector['source'] | 'bypass' }[] = [];
    await Promise.all(
      results.map(async (result, k) => {
        const index = indices[k]!;
        try {
          const answer = await result;
          sources.push({ source: bypassed ? 'bypass' : answer.source });
          sink.vector(index, truncateDims(answer.vector, dims), answer.source === 'l1' || answer.source === 'redis');
        } catch (error) {
          if (!(error instanceof RequestCancelledError)) sink.error(index, asTwinlaneError(error));
        }
      }),
    );
    this.#parts.count(sources);
  }
}
