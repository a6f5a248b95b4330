// The request flow: validate against the model's limits → cache actor (hits, single flight) →
// the lane for misses → store → reply. Transports (HTTP, WebSocket) call this and nothing deeper.
// Whole requests (HTTP) succeed or fail together; streams (WebSocket) answer item by item, cached
// items first, and send their misses to the lane in chunks the transport paces. Both can be
// cancelled with an AbortSignal: items no request waits for any more never reach a model.
import { imageKey, textKey, type CacheActor, type CachedVector, type CacheSource, type Cancellation, type ComputeMisses, type RedisState } from '../cache/index.js';
import type { ImageItem, ImageLane, Lane, LaneHandle, LaneName, LaneStats, Priority, TextItem, TextLane, TokenCounter } from '../lanes/index.js';
import { TwinlaneError } from './errors.js';
import { abortError, laneCompute, unwantedBy, type LaneAdmission, type Timing } from './lane-compute.js';
import { Stream, type EmbedStream, type StreamSink } from './stream.js';
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
  /** Whether the answer reports token usage; when a cache tier kept no count, counting costs main-thread time. */
  readonly needsUsage?: boolean;
  /** The request field holding the texts, for error `param`s (`input` or `inputs`). */
  readonly param: string;
  /** Its signal aborts when the client goes away: the request's items still queued are dropped. */
  readonly cancellation?: Cancellation | undefined;
  readonly policy?: RequestPolicy | undefined;
}

/** How a request asks to be scheduled (HTTP: x-priority, x-request-timeout-ms). */
export interface RequestPolicy {
  readonly priority: Priority;
  /** performance.now() when the request arrived: its deadline counts from there. */
  readonly startedAt: number;
  /** The request's own deadline in ms; absent: its lane's queue timeout. */
  readonly timeoutMs?: number | undefined;
}

/** An image as a request gives it: its bytes, or a URL to fetch them from. */
export type ImageInput = { readonly bytes: Buffer } | { readonly url: string };

export interface ImageEmbedRequest {
  /** Omitted: the image lane's model. */
  readonly model?: string | undefined;
  readonly inputs: readonly ImageInput[];
  readonly normalize: boolean;
  readonly dimensions?: number | undefined;
  /** The request field holding the images, for error `param`s (`input` or `inputs`). */
  readonly param: string;
  /** Its signal aborts when the client goes away: the request's items still queued are dropped. */
  readonly cancellation?: Cancellation | undefined;
  readonly policy?: RequestPolicy | undefined;
}

/** Fetches image URLs (SSRF-guarded, single flight); src/image-fetch.ts provides it. */
export interface ImageSource {
  fetch(url: string): Promise<{ readonly bytes: Buffer }>;
}

export interface EmbedResult {
  readonly model: string;
  readonly lane: LaneName;
  readonly vectors: readonly Float32Array[];
  readonly dims: number;
  /** Tokens over all inputs (special tokens included), as OpenAI's usage reports them; 0 for images. */
  readonly promptTokens: number;
  readonly cacheHits: number;
  readonly queueMs: number;
  readonly inferenceMs: number;
  /** Every item's cache key when every item was a cache hit: the answer may be kept and sent again while they stay in L1 (see touchCached). */
  readonly hotKeys: readonly string[] | null;
}

export interface Readiness {
  readonly ready: boolean;
  readonly lanes: Readonly<Record<string, LaneStats & { readonly model: string }>>;
  readonly cache: { readonly l1: 'up' | 'disabled'; readonly redis: RedisState; readonly l1Entries: number; readonly l1Bytes: number };
}

export interface OrchestratorParts {
  readonly text: { readonly model: ModelEntry; readonly lane: TextLane; readonly tokens: TokenCounter; readonly queueTimeoutMs: number | null };
  readonly image: { readonly model: ModelEntry; readonly lane: ImageLane; readonly fetcher: ImageSource; readonly maxImageBytes: number; readonly queueTimeoutMs: number | null } | null;
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

/** One lane's part of a request, in the shape the shared flow (#run) needs. */
interface LaneJob<I> {
  readonly lane: Lane<I>;
  readonly model: ModelEntry;
  readonly keys: readonly string[];
  readonly item: (index: number) => I;
  readonly param: string;
  readonly bypassCache: boolean;
  readonly dimensions: number | undefined;
  readonly cancellation: Cancellation | undefined;
  readonly admission: LaneAdmission;
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
    const { text, image } = this.#parts;
    return image ? [text.model, image.model] : [text.model];
  }

  /** The model a request names, or the lane's default; unknown ids are a 404 naming the param. */
  model(id: string | undefined, lane: LaneName): ModelEntry {
    const model = id === undefined ? this.models().find((m) => m.lane === lane) : this.models().find((m) => m.id === id);
    if (!model) {
      throw new TwinlaneError('model_not_found', id === undefined ? `No ${lane} model is configured.` : `The model '${id}' does not exist on this server. Available: ${this.models().map((m) => m.id).join(', ')}.`, { param: 'model' });
    }
    return model;
  }

  #lanes(): { name: LaneName; model: ModelEntry; lane: LaneHandle }[] {
    const { text, image } = this.#parts;
    const lanes: { name: LaneName; model: ModelEntry; lane: LaneHandle }[] = [{ name: 'text', model: text.model, lane: text.lane }];
    if (image) lanes.push({ name: 'image', model: image.model, lane: image.lane });
    return lanes;
  }

  readiness(): Readiness {
    const { cache, l1Enabled } = this.#parts;
    const stats = cache.stats();
    const lanes = Object.fromEntries(this.#lanes().map((l) => [l.name, { ...l.lane.stats(), model: l.model.id }]));
    return {
      ready: Object.values(lanes).every((l) => l.ready),
      lanes,
      cache: { l1: l1Enabled ? 'up' : 'disabled', redis: cache.status().redis, l1Entries: stats.l1Entries, l1Bytes: stats.l1Bytes },
    };
  }

  /** The lane of that name, for transports that admit or shed before a request is parsed; null when it is off. */
  lane(name: LaneName): LaneHandle | null {
    return this.#lanes().find((l) => l.name === name)?.lane ?? null;
  }

  laneStats(): { name: LaneName; stats: LaneStats }[] {
    return this.#lanes().map((l) => ({ name: l.name, stats: l.lane.stats() }));
  }

  #validateCount(count: number, param: string): void {
    const { maxInputs } = this.#parts.limits;
    if (count === 0) throw new TwinlaneError('empty_input', `${param} must contain at least one item.`, { param });
    if (count > maxInputs) throw new TwinlaneError('too_many_inputs', `${param} has ${count} items; the limit is ${maxInputs}.`, { param });
  }

  #validateTexts(inputs: readonly string[], param: string): void {
    const { maxChars } = this.#parts.limits;
    this.#validateCount(inputs.length, param);
    inputs.forEach((text, i) => {
      if (text.length === 0) throw new TwinlaneError('empty_input', `${param}[${i}] is an empty string.`, { param: `${param}[${i}]` });
      if (text.length > maxChars) throw new TwinlaneError('input_too_long', `${param}[${i}] has ${text.length} characters; the limit is ${maxChars}.`, { param: `${param}[${i}]` });
    });
  }

  #validateDimensions(dimensions: number | undefined, model: ModelEntry): void {
    if (dimensions === undefined) return;
    if (!Number.isInteger(dimensions) || dimensions < 1 || dimensions > model.dims) {
      throw new TwinlaneError('invalid_dimensions', `dimensions must be an integer from 1 to ${model.dims} for ${model.id} (got ${dimensions}).`, { param: 'dimensions' });
    }
  }

  #modelFor(id: string | undefined, lane: LaneName): ModelEntry {
    const model = this.model(id, lane);
    if (model.lane !== lane) {
      throw new TwinlaneError('invalid_request', `${model.id} is a${model.lane === 'image' ? 'n image' : ' text'} model; send ${model.lane === 'image' ? 'images' : 'text'} to it.`, { param: 'model' });
    }
    return model;
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

  #textJob(request: TextEmbedRequest, model: ModelEntry): LaneJob<TextItem> {
    const { text, cachePrefix } = this.#parts;
    return {
      lane: text.lane,
      model,
      keys: request.inputs.map((input) => textKey(cachePrefix, model.id, request.normalize, input)),
      item: (i) => ({ text: request.inputs[i]!, normalize: request.normalize, truncate: request.truncate }),
      param: request.param,
      bypassCache: this.#bypassesCache(request, model),
      dimensions: request.dimensions,
      ...this.#scheduling(request, text.queueTimeoutMs),
    };
  }

  async embedText(request: TextEmbedRequest): Promise<EmbedResult> {
    const { text, metrics } = this.#parts;
    const model = this.#modelFor(request.model, 'text');
    this.#validateTexts(request.inputs, request.param);
    this.#validateDimensions(request.dimensions, model);
    const result = await this.#run(this.#textJob(request, model));
    let promptTokens = 0;
    let counted = 0;
    result.answers.forEach((answer, i) => {
      if (answer.tokens !== null) promptTokens += answer.tokens;
      else if (request.needsUsage) {
        promptTokens += text.tokens.count(request.inputs[i]!);
        counted++;
      }
    });
    if (counted > 0) metrics.fallback('tokens_counted_on_main_thread', counted);
    return { ...result.embedded, promptTokens };
  }

  /** The image lane's parts, for a model that resolved to the image lane. */
  #imageLane(model: ModelEntry): NonNullable<OrchestratorParts['image']> {
    const { image } = this.#parts;
    if (!image) throw new Error(`the image model ${model.id} resolved without an image lane. This is a bug.`);
    return image;
  }

  /** An image's bytes: given, or fetched (SSRF-guarded); empty and oversized images are refused naming `param`. */
  async #imageBytes(input: ImageInput, param: string): Promise<Buffer> {
    const image = this.#parts.image!;
    const bytes = 'bytes' in input ? input.bytes : (await image.fetcher.fetch(input.url).catch((error: unknown) => {
      throw error instanceof TwinlaneError ? new TwinlaneError(error.code, `${param}: ${error.message}`, { param, cause: error }) : error;
    })).bytes;
    if (bytes.length === 0) throw new TwinlaneError('empty_input', `${param} has no bytes.`, { param });
    if (bytes.length > image.maxImageBytes) throw new TwinlaneError('payload_too_large', `${param} has ${bytes.length} bytes; the limit is ${image.maxImageBytes}.`, { param });
    return bytes;
  }

  #imageJob(images: readonly Buffer[], request: { normalize: boolean; param: string; dimensions?: number | undefined; cancellation?: Cancellation | undefined; policy?: RequestPolicy | undefined }, model: ModelEntry): LaneJob<ImageItem> {
    return {
      lane: this.#imageLane(model).lane,
      model,
      keys: images.map((bytes) => imageKey(this.#parts.cachePrefix, model.id, request.normalize, bytes)),
      item: (i) => ({ bytes: images[i]!, normalize: request.normalize }),
      param: request.param,
      bypassCache: false,
      dimensions: request.dimensions,
      ...this.#scheduling(request, this.#imageLane(model).queueTimeoutMs),
    };
  }

  /**
   * A request's lane admission (priority, deadline) and its cancellation: the client's going away, or
   * its deadline passing (x-request-timeout-ms, else the lane's queue timeout). The deadline's timer
   * and the combined signal are made only if the cache actor reads them, i.e. when an item waits.
   */
  #scheduling(request: { cancellation?: Cancellation | undefined; policy?: RequestPolicy | undefined }, laneTimeoutMs: number | null): { cancellation: Cancellation | undefined; admission: LaneAdmission } {
    const { cancellation, policy } = request;
    const timeoutMs = policy?.timeoutMs ?? laneTimeoutMs;
    if (!policy || timeoutMs === null) return { cancellation, admission: { priority: policy?.priority ?? 'normal' } };
    const deadline = policy.startedAt + timeoutMs;
    let signal: AbortSignal | undefined;
    const timed: Cancellation = {
      get signal() {
        if (!signal) {
          const timeout = AbortSignal.timeout(Math.max(0, Math.ceil(deadline - performance.now())));
          signal = cancellation ? AbortSignal.any([cancellation.signal, timeout]) : timeout;
        }
        return signal;
      },
    };
    return { cancellation: timed, admission: { priority: policy.priority, deadline } };
  }

  async embedImages(request: ImageEmbedRequest): Promise<EmbedResult> {
    const model = this.#modelFor(request.model, 'image');
    const image = this.#imageLane(model);
    this.#validateCount(request.inputs.length, request.param);
    this.#validateDimensions(request.dimensions, model);
    this.#assertReady(image.lane, model);
    // URLs are keyed by the bytes they answer with, so fetching comes before the cache.
    const images = await Promise.all(request.inputs.map((input, i) => this.#imageBytes(input, `${request.param}[${i}]`)));
    const result = await this.#run(this.#imageJob(images, request, model));
    return { ...result.embedded, promptTokens: 0 };
  }

  #assertReady(lane: LaneHandle, model: ModelEntry): void {
    if (!lane.ready) throw new TwinlaneError('not_ready', `The model ${model.id} is still loading.`);
  }

  /** Computes every item of `job` around the cache (its answers would not be truthful). */
  async #bypass<I>(job: LaneJob<I>, compute: ComputeMisses): Promise<Answered[]> {
    const signal = job.cancellation?.signal;
    const computed = await Promise.all(compute(job.keys.map((_, i) => i), { unwanted: () => unwantedBy(signal) }));
    return computed.map((item) => {
      if (item.ok) return { ...item.value, source: 'bypass' as const };
      throw 'error' in item ? item.error : abortError(signal);
    });
  }

  #countSources(lane: LaneName, answers: readonly { readonly source: ItemSource }[]): number {
    let cacheHits = 0;
    const bySource = new Map<ItemSource, number>();
    for (const answer of answers) {
      bySource.set(answer.source, (bySource.get(answer.source) ?? 0) + 1);
      if (answer.source === 'l1' || answer.source === 'redis') cacheHits++;
    }
    for (const [source, count] of bySource) this.#parts.metrics.cacheItems(lane, source, count);
    return cacheHits;
  }

  /** The flow both lanes share: cache (or not) → lane for misses → per-source counts → dims. */
  async #run<I>(job: LaneJob<I>): Promise<{ answers: Answered[]; embedded: Omit<EmbedResult, 'promptTokens'> }> {
    this.#assertReady(job.lane, job.model);
    const timing: Timing = { queueMs: 0, inferenceMs: 0 };
    const compute = laneCompute(job.lane, job.item, job.param, timing, job.admission);
    let answers: Answered[];
    try {
      answers = job.bypassCache
        ? await this.#bypass(job, compute)
        : await Promise.all(this.#parts.cache.resolve(job.keys, compute, { dims: job.model.dims, cancellation: job.cancellation }));
    } catch (error) {
      // The deadline's AbortSignal.timeout fired while items were still queued: they are dropped.
      if (error instanceof Error && error.name === 'TimeoutError') throw new TwinlaneError('deadline_exceeded', "The request's deadline passed before all of its items were computed; those still queued were dropped.");
      throw error;
    }
    const cacheHits = this.#countSources(job.lane.name, answers);
    const dims = job.dimensions ?? job.model.dims;
    const hotKeys = cacheHits === answers.length ? job.keys : null;
    return {
      answers,
      embedded: { model: job.model.id, lane: job.lane.name, vectors: answers.map((a) => truncateDims(a.vector, dims)), dims, cacheHits, ...timing, hotKeys },
    };
  }

  /**
   * For an answer kept by a transport (server/hot-answers.ts): true when every one of its items is
   * still in L1, counted as the L1 hits it is (metrics, recency, Redis TTL refresh) as if it had been
   * looked up; false when any was evicted, and the request must take the whole flow.
   */
  touchCached(lane: LaneName, keys: readonly string[]): boolean {
    if (!this.#parts.cache.touch(keys)) return false;
    this.#parts.metrics.cacheItems(lane, 'l1', keys.length);
    return true;
  }

  /**
   * A text request to stream. Request-level problems (unknown model, bad dimensions, too many items,
   * not ready) throw; a bad item is reported to `sink` at once and the others go on.
   */
  streamText(request: Omit<TextEmbedRequest, 'needsUsage' | 'cancellation' | 'policy'>, sink: StreamSink): EmbedStream {
    const model = this.#modelFor(request.model, 'text');
    this.#validateCount(request.inputs.length, request.param);
    this.#validateDimensions(request.dimensions, model);
    this.#assertReady(this.#parts.text.lane, model);
    const { maxChars } = this.#parts.limits;
    const job = this.#textJob({ ...request, cancellation: undefined, policy: undefined }, model);
    const maxTokens = model.maxTokens ?? Number.POSITIVE_INFINITY;
    return new Stream<TextItem>({
      cache: this.#parts.cache,
      lane: job.lane,
      model,
      dims: request.dimensions ?? model.dims,
      param: request.param,
      sink,
      invalid: request.inputs.map((text, i) => {
        const param = `${request.param}[${i}]`;
        if (text.length === 0) return new TwinlaneError('empty_input', `${param} is an empty string.`, { param });
        if (text.length > maxChars) return new TwinlaneError('input_too_long', `${param} has ${text.length} characters; the limit is ${maxChars}.`, { param });
        return null;
      }),
      key: (i) => job.keys[i]!,
      item: job.item,
      // As for whole requests: a truncate:false text that could be over max tokens bypasses the cache.
      bypass: (i) => !request.truncate && request.inputs[i]!.length + 2 > maxTokens,
      count: (answers) => void this.#countSources('text', answers),
    }, truncateDims);
  }

  /**
   * An image request to stream: given bytes are keyed (and looked up) at once; URLs are fetched when
   * their chunk is computed, and a fetch that fails fails only that item.
   */
  streamImages(request: Omit<ImageEmbedRequest, 'cancellation' | 'policy'>, sink: StreamSink): EmbedStream {
    const model = this.#modelFor(request.model, 'image');
    const image = this.#imageLane(model);
    this.#validateCount(request.inputs.length, request.param);
    this.#validateDimensions(request.dimensions, model);
    this.#assertReady(image.lane, model);
    const bytes: (Buffer | null)[] = request.inputs.map((input) => ('bytes' in input ? input.bytes : null));
    const keyOf = (b: Buffer) => imageKey(this.#parts.cachePrefix, model.id, request.normalize, b);
    return new Stream<ImageItem>({
      cache: this.#parts.cache,
      lane: image.lane,
      model,
      dims: request.dimensions ?? model.dims,
      param: request.param,
      sink,
      invalid: request.inputs.map((input, i) => {
        const param = `${request.param}[${i}]`;
        if (!('bytes' in input)) return null;
        if (input.bytes.length === 0) return new TwinlaneError('empty_input', `${param} has no bytes.`, { param });
        if (input.bytes.length > image.maxImageBytes) return new TwinlaneError('payload_too_large', `${param} has ${input.bytes.length} bytes; the limit is ${image.maxImageBytes}.`, { param });
        return null;
      }),
      key: (i) => (bytes[i] ? keyOf(bytes[i]!) : null),
      fetchKey: async (i) => {
        bytes[i] = await this.#imageBytes(request.inputs[i]!, `${request.param}[${i}]`);
        return keyOf(bytes[i]!);
      },
      item: (i) => ({ bytes: bytes[i]!, normalize: request.normalize }),
      bypass: () => false,
      count: (answers) => void this.#countSources('image', answers),
    }, truncateDims);
  }

  async close(): Promise<void> {
    await Promise.all(this.#lanes().map((l) => l.lane.close()));
    await this.#parts.cache.close();
  }
}
