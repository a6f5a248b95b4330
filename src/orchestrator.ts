// The request flow: validate against the model's limits → cache actor (hits, single flight) → the
// lane for misses → store → reply. Transports (HTTP, WebSocket) call this and nothing deeper. Models
// come from the registry, image bytes from the image path, readiness and usage from their modules.
// Whole requests (HTTP) succeed or fail together; streams (WebSocket) answer item by item, cached
// items first, and send their misses to the lane in chunks the transport paces. Both can be
// cancelled (src/cancel.ts): items no request waits for any more never reach a model.
import {
  imageKey,
  RequestCancelledError,
  textKey,
  type CacheActor,
  type CachedVector,
  type CacheSource,
  type Cancellation,
  type ComputeMisses,
  type ComputeTiming,
} from '../cache/index.js';
import type { ImageItem, Lane, LaneHandle, LaneName, LaneStats, Priority, TextItem } from '../lanes/index.js';
import { truncateDims } from './dims.js';
import { LaneStormedError, TwinlaneError } from './errors.js';
import type { ImageBytes, ImageInput } from './image-bytes.js';
import { cancelledError, DeadlineCancellation } from './cancel.js';
import { laneCompute, type LaneAdmission } from './lane-compute.js';
import { checkCount, itemParam, textRefusal, type Limits } from './limits.js';
import type { Metrics } from './metrics.js';
import { readinessOf, type Readiness, type ServedLane } from './readiness.js';
import { ModelRegistry, type ImageTower, type ServedModel, type TextTower } from './registry.js';
import { Stream, type EmbedStream, type StreamSink } from './stream.js';
import type { OffsetUnit, Tokenized, Tokenizers } from './tokenize.js';
import type { Usage } from './usage.js';

/** How a request asks to be scheduled (HTTP: x-priority, x-request-timeout-ms). */
export interface RequestPolicy {
  readonly priority: Priority;
  /** performance.now() when the request arrived: its deadline counts from there. */
  readonly startedAt: number;
  /** The request's own deadline in ms; absent: its lane's queue timeout; null: none (batch work). */
  readonly timeoutMs?: number | null | undefined;
  /**
   * Answer from L1 only: a request with any item not there (or that would skip the cache, or needs
   * an image fetched) is refused with LaneStormedError before Redis, a fetch or the lane is touched.
   * What a stormed lane's small requests get (server/front-gate.ts), so cached items stay answered.
   */
  readonly cachedOnly?: boolean;
}

interface RequestBase {
  /** Omitted: the lane's default model. */
  readonly model?: string | undefined;
  readonly normalize: boolean;
  /** Matryoshka truncation, applied after the cache, then re-normalised. */
  readonly dimensions?: number | undefined;
  /** The request field holding the inputs, for error `param`s (`input` or `inputs`). */
  readonly param: string;
  /** Where each input sits in the client's list, when this request is a part of a mixed one. */
  readonly positions?: readonly number[] | undefined;
  /** Cancelled when the client goes away: the request's items still queued are dropped. */
  readonly cancellation?: Cancellation | undefined;
  readonly policy?: RequestPolicy | undefined;
}

export interface TextEmbedRequest extends RequestBase {
  readonly inputs: readonly string[];
  readonly truncate: boolean;
  /** Whether the answer reports token usage; when a cache tier kept no count, counting costs main-thread time. */
  readonly needsUsage?: boolean;
}

export interface ImageEmbedRequest extends RequestBase {
  readonly inputs: readonly ImageInput[];
}

/** One item of a request that may mix texts and images (/v1/embeddings, for a model with both towers). */
export type EmbedInput = { readonly text: string } | { readonly image: ImageInput };

export interface MixedEmbedRequest extends RequestBase {
  readonly inputs: readonly EmbedInput[];
  readonly truncate: boolean;
  readonly needsUsage?: boolean;
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

export interface TokenizeRequest {
  readonly model?: string | undefined;
  readonly inputs: readonly string[];
  readonly addSpecialTokens: boolean;
  readonly offsets: OffsetUnit;
  readonly param: string;
}

export interface TokenizeResult {
  readonly model: string;
  readonly maxTokens: number;
  readonly inputs: readonly Tokenized[];
}

export interface LanePart<I> {
  readonly lane: Lane<I>;
  /** How long an item may wait for its batch when the request sets no deadline; null: for ever. */
  readonly queueTimeoutMs: number | null;
}

export interface OrchestratorParts {
  readonly registry: ModelRegistry;
  readonly text: LanePart<TextItem>;
  readonly image: LanePart<ImageItem> | null;
  readonly images: ImageBytes;
  readonly usage: Usage;
  readonly tokenizers: Tokenizers;
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
  readonly timing?: ComputeTiming | undefined;
}

/** One lane's part of a request, in the shape the shared flow (#run) needs. */
interface LaneJob<I> {
  readonly lane: Lane<I>;
  readonly tower: { readonly id: string; readonly dims: number };
  readonly keys: readonly string[];
  readonly item: (index: number) => I;
  readonly paramAt: (index: number) => string;
  readonly bypassCache: boolean;
  readonly dimensions: number | undefined;
  readonly cancellation: Cancellation | undefined;
  readonly admission: LaneAdmission;
  /** RequestPolicy.cachedOnly. */
  readonly cachedOnly: boolean;
  /** Ends the request's deadline timer, once its items are all answered. */
  readonly dispose?: (() => void) | undefined;
}

type Embedded = Omit<EmbedResult, 'promptTokens'>;

export class Orchestrator {
  readonly #parts: OrchestratorParts;

  constructor(parts: OrchestratorParts) {
    this.#parts = parts;
  }

  get registry(): ModelRegistry {
    return this.#parts.registry;
  }

  /** The lane a request for `model` (or the default) would reach first: text when the model has a text tower. */
  laneOf(model: string | undefined): LaneName {
    return this.#parts.registry.find(model, 'text').text ? 'text' : 'image';
  }

  #lanes(): ServedLane[] {
    const { text, image, registry } = this.#parts;
    // The lane's default first, then the rest in the order its workers hold them.
    const models = (name: LaneName, towers: readonly { readonly id: string }[]) => {
      const first = registry.find(undefined, name).id;
      return [first, ...towers.map((t) => t.id).filter((id) => id !== first)];
    };
    const lanes: ServedLane[] = [{ name: 'text', lane: text.lane, models: models('text', registry.textTowers()) }];
    if (image) lanes.push({ name: 'image', lane: image.lane, models: models('image', registry.imageTowers()) });
    return lanes;
  }

  readiness(): Readiness {
    return readinessOf(this.#lanes(), this.#parts.cache, this.#parts.l1Enabled);
  }

  /** The lane of that name, for transports that admit or shed before a request is parsed; null when it is off. */
  lane(name: LaneName): LaneHandle | null {
    return this.#lanes().find((l) => l.name === name)?.lane ?? null;
  }

  laneStats(): { name: LaneName; stats: LaneStats }[] {
    return this.#lanes().map((l) => ({ name: l.name, stats: l.lane.stats() }));
  }

  async embedText(request: TextEmbedRequest): Promise<EmbedResult> {
    const { registry, limits, usage } = this.#parts;
    const tower = registry.textTower(request.model);
    checkCount(request.inputs.length, request.param, limits);
    request.inputs.forEach((text, i) => {
      const refusal = textRefusal(text, itemParam(request.param, i, request.positions), limits);
      if (refusal) throw refusal;
    });
    ModelRegistry.checkDimensions(request.dimensions, tower);
    const { answers, embedded } = await this.#run(this.#textJob(request, tower));
    return {
      ...embedded,
      promptTokens: usage.promptTokens(tower, request.inputs, answers, request.needsUsage ?? false),
    };
  }

  async embedImages(request: ImageEmbedRequest): Promise<EmbedResult> {
    const tower = this.#parts.registry.imageTower(request.model);
    const image = this.#imageLane(tower);
    checkCount(request.inputs.length, request.param, this.#parts.limits);
    ModelRegistry.checkDimensions(request.dimensions, tower);
    this.#assertReady(image.lane, tower);
    if (request.policy?.cachedOnly && request.inputs.some((input) => !('bytes' in input)))
      throw this.#stormed(image.lane, request.policy.priority);
    const images = await Promise.all(
      request.inputs.map((input, i) => this.#parts.images.of(input, itemParam(request.param, i, request.positions))),
    );
    const { embedded } = await this.#run(this.#imageJob(images, request, tower));
    return { ...embedded, promptTokens: 0 };
  }

  /**
   * A request whose items may be texts or images (/v1/embeddings input objects): each kind goes to
   * its tower's lane, at once, and the answer keeps the client's order. One kind alone is a plain
   * text or image request.
   */
  async embedInputs(request: MixedEmbedRequest): Promise<EmbedResult> {
    const model = this.#parts.registry.find(request.model, 'text');
    checkCount(request.inputs.length, request.param, this.#parts.limits);
    const texts: string[] = [];
    const textAt: number[] = [];
    const images: ImageInput[] = [];
    const imageAt: number[] = [];
    request.inputs.forEach((input, i) => {
      if ('text' in input) this.#place(model, 'text', i, request.param, () => (texts.push(input.text), textAt.push(i)));
      else this.#place(model, 'image', i, request.param, () => (images.push(input.image), imageAt.push(i)));
    });
    const common = { ...request, model: model.id };
    if (images.length === 0) return this.embedText({ ...common, inputs: texts });
    if (texts.length === 0) return this.embedImages({ ...common, inputs: images });
    const [text, image] = await Promise.all([
      this.embedText({ ...common, inputs: texts, positions: textAt }),
      this.embedImages({ ...common, inputs: images, positions: imageAt }),
    ]);
    const vectors: Float32Array[] = new Array<Float32Array>(request.inputs.length);
    textAt.forEach((at, k) => (vectors[at] = text.vectors[k]!));
    imageAt.forEach((at, k) => (vectors[at] = image.vectors[k]!));
    return {
      ...text,
      vectors,
      cacheHits: text.cacheHits + image.cacheHits,
      queueMs: Math.max(text.queueMs, image.queueMs),
      inferenceMs: Math.max(text.inferenceMs, image.inferenceMs),
      // Kept answers are touched as one lane's keys; a mixed answer is always computed afresh.
      hotKeys: null,
    };
  }

  /** Runs `place` when `model` has a tower for `kind`; else the item is refused naming it. */
  #place(model: ServedModel, kind: LaneName, i: number, param: string, place: () => void): void {
    if (model[kind]) {
      place();
      return;
    }
    const at = `${param}[${i}]`;
    throw new TwinlaneError(
      'invalid_request',
      `${at} is ${kind === 'text' ? 'a text' : 'an image'}, but ${model.id} has no ${kind === 'text' ? 'text' : 'vision'} tower.`,
      { param: at },
    );
  }

  /** The tokens of each text as the model's tokenizer makes them (none cut: clients chunk to `maxTokens` themselves). */
  async tokenize(request: TokenizeRequest): Promise<TokenizeResult> {
    const { registry, limits, tokenizers } = this.#parts;
    const tower = registry.textTower(request.model);
    checkCount(request.inputs.length, request.param, limits);
    request.inputs.forEach((text, i) => {
      const refusal = textRefusal(text, `${request.param}[${i}]`, limits);
      if (refusal) throw refusal;
    });
    return {
      model: tower.id,
      maxTokens: tower.maxTokens,
      inputs: await tokenizers.tokenize(tower, request.inputs, request.addSpecialTokens, request.offsets),
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
  streamText(
    request: Omit<TextEmbedRequest, 'needsUsage' | 'cancellation' | 'policy' | 'positions'>,
    sink: StreamSink,
  ): EmbedStream {
    const { registry, limits, cache, text } = this.#parts;
    const tower = registry.textTower(request.model);
    checkCount(request.inputs.length, request.param, limits);
    ModelRegistry.checkDimensions(request.dimensions, tower);
    this.#assertReady(text.lane, tower);
    const job = this.#textJob(request, tower);
    return new Stream<TextItem>({
      cache,
      lane: job.lane,
      model: tower,
      dims: request.dimensions ?? tower.dims,
      param: request.param,
      sink,
      invalid: request.inputs.map((input, i) => textRefusal(input, `${request.param}[${i}]`, limits)),
      key: (i) => job.keys[i]!,
      item: job.item,
      // As for whole requests: a truncate:false text that could be over max tokens bypasses the cache.
      bypass: (i) => !request.truncate && tower.mayExceed(request.inputs[i]!),
      count: (answers) => void this.#countSources('text', answers),
    });
  }

  /**
   * An image request to stream: given bytes are keyed (and looked up) at once; URLs are fetched when
   * their chunk is computed, and a fetch that fails fails only that item.
   */
  streamImages(
    request: Omit<ImageEmbedRequest, 'cancellation' | 'policy' | 'positions'>,
    sink: StreamSink,
  ): EmbedStream {
    const { registry, limits, cache, images } = this.#parts;
    const tower = registry.imageTower(request.model);
    const image = this.#imageLane(tower);
    checkCount(request.inputs.length, request.param, limits);
    ModelRegistry.checkDimensions(request.dimensions, tower);
    this.#assertReady(image.lane, tower);
    const bytes: (Buffer | null)[] = request.inputs.map((input) => ('bytes' in input ? input.bytes : null));
    const keyOf = (b: Buffer) => imageKey(this.#parts.cachePrefix, tower.cacheId, request.normalize, b);
    return new Stream<ImageItem>({
      cache,
      lane: image.lane,
      model: tower,
      dims: request.dimensions ?? tower.dims,
      param: request.param,
      sink,
      invalid: request.inputs.map((input, i) =>
        'bytes' in input ? images.refusal(input.bytes, `${request.param}[${i}]`) : null,
      ),
      key: (i) => (bytes[i] ? keyOf(bytes[i]!) : null),
      fetchKey: async (i) => {
        bytes[i] = await images.of(request.inputs[i]!, `${request.param}[${i}]`);
        return keyOf(bytes[i]!);
      },
      item: (i) => ({ model: tower.slot, bytes: bytes[i]!, normalize: request.normalize }),
      bypass: () => false,
      count: (answers) => void this.#countSources('image', answers),
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.#lanes().map((l) => l.lane.close()));
    await this.#parts.cache.close();
  }

  /** The image lane, for a tower that resolved to it. */
  #imageLane(tower: ImageTower): LanePart<ImageItem> {
    const { image } = this.#parts;
    if (!image) throw new Error(`the image model ${tower.id} resolved without an image lane. This is a bug.`);
    return image;
  }

  /** The refusal of a cached-only request that cannot be answered from L1 alone. */
  #stormed(lane: LaneHandle, priority: Priority | undefined): LaneStormedError {
    return new LaneStormedError(lane.name, lane.retryAfterSeconds(priority));
  }

  #assertReady(lane: LaneHandle, model: { readonly id: string }): void {
    if (!lane.ready) throw new TwinlaneError('not_ready', `The model ${model.id} is still loading.`);
  }

  #textJob(request: Omit<TextEmbedRequest, 'needsUsage'>, tower: TextTower): LaneJob<TextItem> {
    const { text, cachePrefix } = this.#parts;
    return {
      lane: text.lane,
      tower,
      keys: request.inputs.map((input) => textKey(cachePrefix, tower.cacheId, request.normalize, input)),
      item: (i) => ({
        model: tower.slot,
        text: request.inputs[i]!,
        normalize: request.normalize,
        truncate: request.truncate,
      }),
      paramAt: (i) => itemParam(request.param, i, request.positions),
      // A cached vector may come from a truncated text, and the key (SPEC.md §6) cannot say so: with
      // truncate:false, a text that could be over the model's max tokens is computed, for its 422.
      bypassCache: !request.truncate && request.inputs.some((input) => tower.mayExceed(input)),
      dimensions: request.dimensions,
      cachedOnly: request.policy?.cachedOnly ?? false,
      ...this.#scheduling(request, text.queueTimeoutMs),
    };
  }

  #imageJob(images: readonly Buffer[], request: ImageEmbedRequest, tower: ImageTower): LaneJob<ImageItem> {
    const image = this.#imageLane(tower);
    return {
      lane: image.lane,
      tower,
      keys: images.map((bytes) => imageKey(this.#parts.cachePrefix, tower.cacheId, request.normalize, bytes)),
      item: (i) => ({ model: tower.slot, bytes: images[i]!, normalize: request.normalize }),
      paramAt: (i) => itemParam(request.param, i, request.positions),
      bypassCache: false,
      dimensions: request.dimensions,
      cachedOnly: request.policy?.cachedOnly ?? false,
      ...this.#scheduling(request, image.queueTimeoutMs),
    };
  }

  /**
   * A request's lane admission (priority, deadline) and its cancellation: the client's going away, or
   * its deadline passing (x-request-timeout-ms, else the lane's queue timeout). The deadline's timer
   * is started only if the cache actor listens, i.e. when an item waits.
   */
  #scheduling(
    request: RequestBase,
    laneTimeoutMs: number | null,
  ): { cancellation: Cancellation | undefined; admission: LaneAdmission; dispose?: () => void } {
    const { cancellation, policy } = request;
    const timeoutMs = policy?.timeoutMs === undefined ? laneTimeoutMs : policy.timeoutMs;
    if (!policy || timeoutMs === null) return { cancellation, admission: { priority: policy?.priority ?? 'normal' } };
    const deadline = policy.startedAt + timeoutMs;
    const timed = new DeadlineCancellation(cancellation, deadline);
    return { cancellation: timed, admission: { priority: policy.priority, deadline }, dispose: () => timed.dispose() };
  }

  /** Computes every item of `job` around the cache (its answers would not be truthful). */
  async #bypass<I>(job: LaneJob<I>, compute: ComputeMisses): Promise<Answered[]> {
    const { cancellation } = job;
    const computed = await Promise.all(
      compute(
        job.keys.map((_, i) => i),
        { unwanted: () => cancellation?.cancelled ?? null },
      ),
    );
    return computed.map((item) => {
      if (item.ok) return { ...item.value, timing: item.timing, source: 'bypass' as const };
      throw 'error' in item ? item.error : cancelledError(cancellation);
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
  async #run<I>(job: LaneJob<I>): Promise<{ answers: Answered[]; embedded: Embedded }> {
    this.#assertReady(job.lane, job.tower);
    if (job.cachedOnly && (job.bypassCache || !this.#parts.cache.inL1(job.keys))) {
      job.dispose?.();
      throw this.#stormed(job.lane, job.admission.priority);
    }
    const compute = laneCompute(job.lane, job.item, job.paramAt, job.admission);
    let answers: Answered[];
    try {
      answers = job.bypassCache
        ? await this.#bypass(job, compute)
        : await Promise.all(
            this.#parts.cache.resolve(job.keys, compute, { dims: job.tower.dims, cancellation: job.cancellation }),
          );
    } catch (error) {
      // The deadline passed while items were still queued: they are dropped.
      if (error instanceof RequestCancelledError && error.why === 'deadline')
        throw new TwinlaneError(
          'deadline_exceeded',
          "The request's deadline passed before all of its items were computed; those still queued were dropped.",
        );
      throw error;
    } finally {
      job.dispose?.();
    }
    const cacheHits = this.#countSources(job.lane.name, answers);
    const dims = job.dimensions ?? job.tower.dims;
    return {
      answers,
      embedded: {
        model: job.tower.id,
        lane: job.lane.name,
        vectors: answers.map((a) => truncateDims(a.vector, dims)),
        dims,
        cacheHits,
        ...longest(answers),
        hotKeys: cacheHits === answers.length ? job.keys : null,
      },
    };
  }
}

/** The longest queue wait and model call among a request's computed items (0 when all were hits). */
function longest(answers: readonly { readonly timing?: ComputeTiming | undefined }[]): ComputeTiming {
  let queueMs = 0;
  let inferenceMs = 0;
  for (const { timing } of answers) {
    if (!timing) continue;
    queueMs = Math.max(queueMs, timing.queueMs);
    inferenceMs = Math.max(inferenceMs, timing.inferenceMs);
  }
  return { queueMs, inferenceMs };
}
