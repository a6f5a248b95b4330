// The request flow: validate against the model's limits → cache actor (hits, single flight) →
// the lane for misses → store → reply. Transports (HTTP, WebSocket) call this and nothing deeper.
import { textKey, type CacheActor, type CachedVector, type CacheSource, type Computed, type RedisState } from '../cache/index.js';
import { LaneRejectedError, type ItemError, type LaneName, type LaneStats, type TextLane } from '../lanes/index.js';
import { TwinlaneError } from './errors.js';
import type { Metrics } from './metrics.js';

export interface ModelEntry {
  readonly id: string;
  readonly lane: LaneName;
  readonly dims: number;
  /** Text models: the most tokens one input may have. */
  readonly maxTokens: number | null;
}

export interface Limits {
  readonly maxInputs: number;
  readonly maxChars: number;
}

export interface TextEmbedRequest {
  /** Omitted: the text lane's model. */
  readonly model?: string | undefined;
  readonly inputs: readonly string[];
  readonly normalize: boolean;
  readonly truncate: boolean;
  /** Matryoshka truncation, applied after the cache, then re-normalised. */
  readonly dimensions?: number | undefined;
}

export interface EmbedResult {
  readonly model: string;
  readonly vectors: readonly Float32Array[];
  readonly dims: number;
  /** Tokens over all inputs (special tokens included), as OpenAI's usage reports them. */
  readonly promptTokens: number;
  readonly cacheHits: number;
  readonly queueMs: number;
  readonly inferenceMs: number;
}

export interface Readiness {
  readonly ready: boolean;
  readonly lanes: Readonly<Record<string, LaneStats & { readonly model: string }>>;
  readonly cache: { readonly l1: 'up' | 'disabled'; readonly redis: RedisState; readonly l1Entries: number; readonly l1Bytes: number };
}

export interface OrchestratorParts {
  readonly text: { readonly model: ModelEntry; readonly lane: TextLane };
  readonly cache: CacheActor;
  readonly cachePrefix: string;
  readonly l1Enabled: boolean;
  readonly limits: Limits;
  readonly metrics: Metrics;
}

/** How an item was answered: by a cache tier, by a computation, or around the cache. */
export type ItemSource = CacheSource | 'bypass';

interface Answered extends CachedVector {
  readonly source: ItemSource;
}

function laneError(error: unknown): unknown {
  if (!(error instanceof LaneRejectedError)) return error;
  if (error.reason === 'closed') return new TwinlaneError('shutting_down', error.message);
  return new TwinlaneError('lane_overloaded', error.message, { retryAfterSeconds: error.retryAfterSeconds });
}

function itemError(error: ItemError): TwinlaneError {
  return new TwinlaneError(error.code, error.message, { param: 'input' });
}

/** Keeps the first `dims` values and re-normalises them, as Matryoshka models are meant to be cut. */
export function truncateDims(vector: Float32Array, dims: number): Float32Array {
  if (dims >= vector.length) return vector;
  const out = vector.slice(0, dims);
  let sum = 0;
  for (const v of out) sum += v * v;
  if (sum > 0) {
    const inv = 1 / Math.sqrt(sum);
    for (let i = 0; i < dims; i++) out[i]! *= inv;
  }
  return out;
}

export class Orchestrator {
  readonly #parts: OrchestratorParts;

  constructor(parts: OrchestratorParts) {
    this.#parts = parts;
  }

  models(): readonly ModelEntry[] {
    return [this.#parts.text.model];
  }

  /** The model a request names, or the lane's default; unknown ids are a 404 naming the param. */
  model(id: string | undefined, lane: LaneName): ModelEntry {
    const model = id === undefined ? this.models().find((m) => m.lane === lane) : this.models().find((m) => m.id === id);
    if (!model) {
      throw new TwinlaneError('model_not_found', id === undefined ? `No ${lane} model is configured.` : `The model '${id}' does not exist on this server. Available: ${this.models().map((m) => m.id).join(', ')}.`, { param: 'model' });
    }
    return model;
  }

  readiness(): Readiness {
    const { text, cache, l1Enabled } = this.#parts;
    const stats = cache.stats();
    const lanes = { text: { ...text.lane.stats(), model: text.model.id } };
    return {
      ready: Object.values(lanes).every((l) => l.ready),
      lanes,
      cache: { l1: l1Enabled ? 'up' : 'disabled', redis: cache.status().redis, l1Entries: stats.l1Entries, l1Bytes: stats.l1Bytes },
    };
  }

  laneStats(): { name: LaneName; stats: LaneStats }[] {
    return [{ name: 'text', stats: this.#parts.text.lane.stats() }];
  }

  #validateInputs(inputs: readonly string[]): void {
    const { maxInputs, maxChars } = this.#parts.limits;
    if (inputs.length === 0) throw new TwinlaneError('empty_input', 'input must contain at least one item.', { param: 'input' });
    if (inputs.length > maxInputs) throw new TwinlaneError('too_many_inputs', `input has ${inputs.length} items; the limit is ${maxInputs}.`, { param: 'input' });
    inputs.forEach((text, i) => {
      if (text.length === 0) throw new TwinlaneError('empty_input', `input[${i}] is an empty string.`, { param: `input[${i}]` });
      if (text.length > maxChars) throw new TwinlaneError('input_too_long', `input[${i}] has ${text.length} characters; the limit is ${maxChars}.`, { param: `input[${i}]` });
    });
  }

  #validateDimensions(dimensions: number | undefined, model: ModelEntry): void {
    if (dimensions === undefined) return;
    if (!Number.isInteger(dimensions) || dimensions < 1 || dimensions > model.dims) {
      throw new TwinlaneError('invalid_dimensions', `dimensions must be an integer from 1 to ${model.dims} for ${model.id} (got ${dimensions}).`, { param: 'dimensions' });
    }
  }

  /**
   * A cached vector may come from a truncated text, and the key (fixed by SPEC.md §6) cannot say so.
   * With truncate:false, a text that could be over the model's max tokens must be computed, so it
   * gets its 422 instead of a truncated hit. WordPiece yields at most one token per UTF-16 unit plus
   * two specials, so shorter texts cannot be over and keep using the cache.
   */
  #bypassesCache(request: TextEmbedRequest, model: ModelEntry): boolean {
    const maxTokens = model.maxTokens ?? Number.POSITIVE_INFINITY;
    return !request.truncate && request.inputs.some((input) => input.length + 2 > maxTokens);
  }

  async #computeUncached(count: number, compute: (indices: readonly number[]) => Promise<Computed[]>): Promise<Answered[]> {
    const computed = await compute(Array.from({ length: count }, (_, i) => i));
    return computed.map((item) => {
      if (!item.ok) throw item.error;
      return { ...item.value, source: 'bypass' };
    });
  }

  async embedText(request: TextEmbedRequest): Promise<EmbedResult> {
    const { text, cache, cachePrefix, metrics } = this.#parts;
    const model = this.model(request.model, 'text');
    if (model.lane !== 'text') throw new TwinlaneError('invalid_request', `${model.id} is an image model; send images to it.`, { param: 'model' });
    this.#validateInputs(request.inputs);
    this.#validateDimensions(request.dimensions, model);
    if (!text.lane.ready) throw new TwinlaneError('not_ready', 'The text model is still loading.');

    const keys = request.inputs.map((input) => textKey(cachePrefix, model.id, request.normalize, input));
    let queueMs = 0;
    let inferenceMs = 0;
    const compute = async (indices: readonly number[]): Promise<Computed[]> => {
      const items = indices.map((i) => ({ text: request.inputs[i]!, normalize: request.normalize, truncate: request.truncate }));
      const outcome = await text.lane.embed(items).catch((error: unknown) => {
        throw laneError(error);
      });
      queueMs = outcome.queueMs;
      inferenceMs = outcome.inferenceMs;
      return outcome.items.map((item) => (item.ok ? { ok: true, value: { vector: item.vector, tokens: item.tokens } } : { ok: false, error: itemError(item.error) }));
    };
    const resolved: Answered[] = this.#bypassesCache(request, model)
      ? await this.#computeUncached(request.inputs.length, compute)
      : await Promise.all(cache.resolve(keys, compute, { dims: model.dims }));

    let promptTokens = 0;
    let cacheHits = 0;
    const bySource = new Map<ItemSource, number>();
    for (const item of resolved) {
      promptTokens += item.tokens ?? 0;
      bySource.set(item.source, (bySource.get(item.source) ?? 0) + 1);
      if (item.source === 'l1' || item.source === 'redis') cacheHits++;
    }
    for (const [source, count] of bySource) metrics.cacheItems('text', source, count);

    const dims = request.dimensions ?? model.dims;
    return {
      model: model.id,
      vectors: resolved.map((r) => truncateDims(r.vector, dims)),
      dims,
      promptTokens,
      cacheHits,
      queueMs,
      inferenceMs,
    };
  }

  async close(): Promise<void> {
    await this.#parts.text.lane.close();
    await this.#parts.cache.close();
  }
}
