// Configuration: defaults → parse (env, then CLI flags) → validate → freeze, once at start-up.
// Every option is one row of OPTIONS, which is also what `--help` prints and what the README's table
// documents, so the three cannot drift apart.
import os from 'node:os';
import path from 'node:path';
// Straight from the module, not lanes/index.ts: config is read before anything loads piscina.
import { parseFaults, type FaultSpec } from '../lanes/faults.js';
import { DEFAULT_BULK_SHARE } from '../lanes/batcher.js';
import { RATE_LIMIT_SEGMENT } from '../cache/index.js';
import type { ModelDtype } from './models.js';

export interface Config {
  readonly host: string;
  readonly port: number;
  readonly reusePort: boolean;
  readonly modelsDir: string;
  /** Text lane models, the first its default; never empty. */
  readonly textModels: readonly string[];
  /** Image lane models, the first its default; empty when the image lane is off (`none`) unless a text model has a vision tower. */
  readonly imageModels: readonly string[];
  readonly textDtype: ModelDtype;
  readonly imageDtype: ModelDtype;
  readonly hubUrl: string;
  readonly offline: boolean;
  readonly redisUrl: string | null;
  readonly cachePrefix: string;
  /** Files and batches (the Files and Batches API). */
  readonly filesDir: string;
  readonly filesMaxBytes: number;
  readonly filesTtlSeconds: number;
  readonly batchWorker: boolean;
  readonly batchChunkLines: number;
  readonly batchConcurrency: number;
  readonly batchLineConcurrency: number;
  readonly batchLaneShare: number;
  readonly batchMaxLines: number;
  readonly batchLockMs: number;
  readonly cacheTtlSeconds: number;
  readonly redisTimeoutMs: number;
  readonly redisFailureThreshold: number;
  readonly redisCoolDownMs: number;
  readonly l1Bytes: number;
  readonly apiKeys: readonly string[];
  readonly authOps: boolean;
  readonly imageFetchAllowlist: readonly string[];
  readonly executionProvider: { readonly name: 'cpu' | 'cuda'; readonly deviceId: number };
  readonly textThreads: number;
  readonly textIntraOpThreads: number;
  readonly textMaxQueue: number;
  readonly textMaxBatchItems: number;
  readonly textMaxBatchTokens: number;
  readonly textNice: number;
  readonly textQueueTimeoutMs: number | null;
  readonly imageQueueTimeoutMs: number | null;
  readonly imageThreads: number;
  readonly imageIntraOpThreads: number;
  readonly imageMaxQueue: number;
  readonly imageMaxBatchItems: number;
  readonly imageNice: number;
  /** V8 heap limit of every lane worker in MiB; 0: Node's default. */
  readonly workerMaxHeapMb: number;
  /** Test-only: lane workers die on inputs holding these markers (lanes/faults.ts). */
  readonly testWorkerFaults: readonly FaultSpec[];
  readonly maxBodyBytes: number;
  readonly maxImageBodyBytes: number;
  readonly maxImageBytes: number;
  readonly maxImagePixels: number;
  readonly imageFetchTimeoutMs: number;
  readonly imageFetchConnectTimeoutMs: number;
  readonly imageFetchMaxRedirects: number;
  readonly maxInputs: number;
  readonly maxChars: number;
  readonly rateLimit: number | null;
  readonly rateBurst: number | null;
  readonly shutdownTimeoutMs: number;
  readonly drainDelayMs: number;
  readonly accessLog: boolean;
  readonly ui: boolean;
  readonly hotAnswerBytes: number;
  readonly shedAfterRefusalsPerSecond: number;
  readonly shedProbesPerSecond: number;
  /** ms a shed request's 429 is held before it is written; 0: at once. */
  readonly shedHoldMs: number;
  /** A stormed lane's request announcing at most this many body bytes is answered from L1 only instead of refused unread; 0: none. */
  readonly shedReadMaxBytes: number;
  readonly wsMaxFrameBytes: number;
  readonly wsMaxInFlightItems: number;
  readonly wsMaxQueuedBytes: number;
  readonly wsWindowBatches: number;
  readonly wsHighWaterBytes: number;
  readonly wsMaxBackpressureBytes: number;
  readonly wsSlowReaderMs: number;
  readonly wsIdleTimeoutSeconds: number;
  readonly wsMaxConnections: number;
}

type Parsed = string | number | boolean | null | readonly string[] | Config['executionProvider'] | readonly FaultSpec[];

interface Option {
  readonly key: keyof Config;
  readonly env: string;
  /** Shown in --help and the README; `derived` options are computed from other values. */
  readonly default: string;
  readonly unit: string;
  readonly why: string;
  readonly parse: (raw: string, env: string) => Parsed;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const str = (raw: string): string => raw;
const nullableStr = (raw: string): string | null => (raw === '' ? null : raw);
const list = (raw: string): readonly string[] =>
  Object.freeze(
    raw
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  );

function bool(raw: string, env: string): boolean {
  const v = raw.toLowerCase();
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new ConfigError(`${env} must be true, false, 1 or 0 (got "${raw}").`);
}

function int(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (raw: string, env: string): number => {
    if (!/^\d+$/.test(raw.trim())) throw new ConfigError(`${env} must be a whole number (got "${raw}").`);
    const n = Number(raw);
    if (n < min || n > max) throw new ConfigError(`${env} must be between ${min} and ${max} (got ${n}).`);
    return n;
  };
}

function optionalPositive(raw: string, env: string): number | null {
  if (raw === '') return null;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new ConfigError(`${env} must be a positive number (got "${raw}").`);
  return n;
}

/** A fraction in (0, 1]. */
function share(raw: string, env: string): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n <= 0 || n > 1)
    throw new ConfigError(`${env} must be a number above 0 and at most 1 (got "${raw}").`);
  return n;
}

/** A timeout in ms; 0 means none (null). */
function timeout(raw: string, env: string): number | null {
  const ms = int(0, 3_600_000)(raw, env);
  return ms === 0 ? null : ms;
}

function provider(raw: string, env: string): Config['executionProvider'] {
  const match = /^(cpu|cuda)(?::(\d+))?$/.exec(raw.trim().toLowerCase());
  if (!match || (match[1] === 'cpu' && match[2] !== undefined)) {
    throw new ConfigError(`${env} must be "cpu" or "cuda[:deviceId]" (got "${raw}").`);
  }
  return Object.freeze({ name: match[1] as 'cpu' | 'cuda', deviceId: Number(match[2] ?? 0) });
}

function faults(raw: string, env: string): readonly FaultSpec[] {
  try {
    return Object.freeze(parseFaults(raw));
  } catch (error) {
    throw new ConfigError(`${env}: ${(error as Error).message}.`);
  }
}

function url(raw: string, env: string): string {
  try {
    return new URL(raw).toString().replace(/\/$/, '');
  } catch {
    throw new ConfigError(`${env} must be a URL (got "${raw}").`);
  }
}

function modelId(raw: string, env: string): string {
  if (!/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)?$/.test(raw) || raw.split('/').includes('..')) {
    throw new ConfigError(`${env} must be model ids like "org/name", separated by commas (got "${raw}").`);
  }
  // Cache keys start {prefix}:{modelId}:, and this segment already holds the rate limiter's buckets.
  if (raw === RATE_LIMIT_SEGMENT)
    throw new ConfigError(`${env} cannot be "${RATE_LIMIT_SEGMENT}": that key segment holds rate-limit buckets.`);
  return raw;
}

/** A comma-separated list of model ids, each once; `none` (image lane only) is the empty list. */
function modelIds(allowNone: boolean) {
  return (raw: string, env: string): readonly string[] => {
    if (allowNone && raw === 'none') return Object.freeze([]);
    const ids = list(raw).map((id) => modelId(id, env));
    if (ids.length === 0)
      throw new ConfigError(`${env} must name at least one model${allowNone ? ' (or be "none")' : ''}.`);
    const twice = ids.find((id, i) => ids.indexOf(id) !== i);
    if (twice !== undefined) throw new ConfigError(`${env} names ${twice} twice.`);
    return Object.freeze(ids);
  };
}

function dtype(raw: string, env: string): ModelDtype {
  if (raw !== 'fp32' && raw !== 'q8') throw new ConfigError(`${env} must be fp32 or q8 (got "${raw}").`);
  return raw;
}

const DERIVED = 'derived';

export const OPTIONS: readonly Option[] = [
  {
    key: 'host',
    env: 'TWINLANE_HOST',
    default: '127.0.0.1',
    unit: 'address',
    why: 'Listen address; loopback by default so nothing is exposed by accident.',
    parse: str,
  },
  {
    key: 'port',
    env: 'TWINLANE_PORT',
    default: '8080',
    unit: 'port',
    why: 'Listen port; 0 picks a free port, which is logged.',
    parse: int(0, 65535),
  },
  {
    key: 'reusePort',
    env: 'TWINLANE_REUSE_PORT',
    default: 'false',
    unit: 'boolean',
    why: 'Share the port with other processes (SO_REUSEPORT; the kernel spreads new connections over them). Off: the port is taken exclusively and a second instance fails start-up with "address in use".',
    parse: bool,
  },
  {
    key: 'modelsDir',
    env: 'TWINLANE_MODELS_DIR',
    default: '~/.cache/twinlane/models',
    unit: 'path',
    why: 'Model folders, one per model id (org/name).',
    parse: (raw) => path.resolve(raw.replace(/^~(?=$|\/)/, os.homedir())),
  },
  {
    key: 'textModels',
    env: 'TWINLANE_TEXT_MODEL',
    default: 'sentence-transformers/all-MiniLM-L6-v2',
    unit: 'model ids',
    why: 'Text lane models, comma-separated; the first is the default of /v1/embeddings and /embed/text. A CLIP-style model (text and vision towers) named here or in TWINLANE_IMAGE_MODEL serves both lanes under one id.',
    parse: modelIds(false),
  },
  {
    key: 'imageModels',
    env: 'TWINLANE_IMAGE_MODEL',
    default: 'Xenova/clip-vit-base-patch32',
    unit: 'model ids',
    why: 'Image lane models, comma-separated; the first is the default of /embed/image. `none`: no image lane (unless a text model has a vision tower).',
    parse: modelIds(true),
  },
  {
    key: 'textDtype',
    env: 'TWINLANE_TEXT_DTYPE',
    default: 'fp32',
    unit: 'fp32 | q8',
    why: 'Weights of the text towers: `onnx/<name>.onnx` (fp32) or `onnx/<name>_quantized.onnx` (q8, dynamic int8). Part of the cache key (`model@q8`), so variants never share vectors.',
    parse: dtype,
  },
  {
    key: 'imageDtype',
    env: 'TWINLANE_IMAGE_DTYPE',
    default: 'fp32',
    unit: 'fp32 | q8',
    why: 'Weights of the vision towers, as TWINLANE_TEXT_DTYPE.',
    parse: dtype,
  },
  {
    key: 'hubUrl',
    env: 'TWINLANE_HUB_URL',
    default: 'https://huggingface.co',
    unit: 'URL',
    why: 'Where missing models are downloaded from (Hugging Face URL layout).',
    parse: url,
  },
  {
    key: 'offline',
    env: 'TWINLANE_OFFLINE',
    default: 'false',
    unit: 'boolean',
    why: 'Never download; a missing model fails start-up with a clear message.',
    parse: bool,
  },
  {
    key: 'redisUrl',
    env: 'TWINLANE_REDIS_URL',
    default: '',
    unit: 'URL',
    why: 'Redis for the shared cache tier; unset = in-process cache only.',
    parse: nullableStr,
  },
  {
    key: 'filesDir',
    env: 'TWINLANE_FILES_DIR',
    default: 'twinlane-files',
    unit: 'path',
    why: 'Where the Files and Batches API keeps files, batch state and chunk outputs; instances that share batches (one Redis) must share this directory (a network file system at the same path).',
    parse: str,
  },
  {
    key: 'filesMaxBytes',
    env: 'TWINLANE_FILES_MAX_BYTES',
    default: '209715200',
    unit: 'bytes',
    why: 'Largest file POST /v1/files takes (413 above it); the upload is held in memory while it arrives.',
    parse: int(1),
  },
  {
    key: 'filesTtlSeconds',
    env: 'TWINLANE_FILES_TTL_SECONDS',
    default: '2592000',
    unit: 's',
    why: 'How long uploaded files and batch outputs are kept (30 days); 0 = until deleted.',
    parse: int(0),
  },
  {
    key: 'batchWorker',
    env: 'TWINLANE_BATCH_WORKER',
    default: 'true',
    unit: 'bool',
    why: 'Run batch chunks on this instance; false: it only takes and reports batches (others compute them).',
    parse: bool,
  },
  {
    key: 'batchChunkLines',
    env: 'TWINLANE_BATCH_CHUNK_LINES',
    default: '100',
    unit: 'lines',
    why: 'Lines per chunk: the unit of work instances share, retry and resume.',
    parse: int(1, 100_000),
  },
  {
    key: 'batchConcurrency',
    env: 'TWINLANE_BATCH_CONCURRENCY',
    default: '2',
    unit: 'chunks',
    why: 'Chunks one instance runs at once: two, so the next chunk fills the lane while the last lines of the one before finish.',
    parse: int(1, 64),
  },
  {
    key: 'batchLineConcurrency',
    env: 'TWINLANE_BATCH_LINE_CONCURRENCY',
    default: '64',
    unit: 'lines',
    why: "Lines of a chunk in flight at once: enough to keep a lane's workers in full batches when no live traffic is about.",
    parse: int(1, 256),
  },
  {
    key: 'batchLaneShare',
    env: 'TWINLANE_BATCH_LANE_SHARE',
    default: String(DEFAULT_BULK_SHARE),
    unit: 'share',
    why: "The share of a lane's workers (at least one) batch jobs may hold while live traffic is about (a live request within 1 s); alone, a batch uses every worker.",
    parse: share,
  },
  {
    key: 'batchMaxLines',
    env: 'TWINLANE_BATCH_MAX_LINES',
    default: '50000',
    unit: 'lines',
    why: 'Most lines in one batch input file (OpenAI allows 50,000).',
    parse: int(1),
  },
  {
    key: 'batchLockMs',
    env: 'TWINLANE_BATCH_LOCK_MS',
    default: '15000',
    unit: 'ms',
    why: 'With Redis: how long a chunk stays locked to an instance without renewal; a chunk of an instance that died is taken by another after this.',
    parse: int(1000),
  },
  {
    key: 'cachePrefix',
    env: 'TWINLANE_CACHE_PREFIX',
    default: 'twinlane',
    unit: 'string',
    why: 'First segment of every cache key, so deployments can share a Redis.',
    parse: (raw, env) => {
      if (!/^[A-Za-z0-9._-]+$/.test(raw))
        throw new ConfigError(`${env} must be letters, digits, ".", "_" or "-" (got "${raw}").`);
      return raw;
    },
  },
  {
    key: 'cacheTtlSeconds',
    env: 'TWINLANE_CACHE_TTL_SECONDS',
    default: '86400',
    unit: 'seconds',
    why: 'Redis entry lifetime; a Redis hit pushes it back at once, an L1 hit at most once per tenth of it.',
    parse: int(1),
  },
  {
    key: 'redisTimeoutMs',
    env: 'TWINLANE_REDIS_TIMEOUT_MS',
    default: '50',
    unit: 'ms',
    why: 'Budget of one Redis lookup; slower answers count as misses and, repeated, open the circuit breaker.',
    parse: int(1, 60000),
  },
  {
    key: 'redisFailureThreshold',
    env: 'TWINLANE_REDIS_FAILURE_THRESHOLD',
    default: '5',
    unit: 'failures',
    why: 'Consecutive failed or timed-out Redis calls that open the circuit breaker (cache and shared rate limits each keep their own), after which requests stop waiting on Redis.',
    parse: int(1, 1000),
  },
  {
    key: 'redisCoolDownMs',
    env: 'TWINLANE_REDIS_COOL_DOWN_MS',
    default: '1000',
    unit: 'ms',
    why: 'How long an open circuit skips Redis before one probe checks whether it is back.',
    parse: int(1, 600000),
  },
  {
    key: 'l1Bytes',
    env: 'TWINLANE_L1_BYTES',
    default: '268435456',
    unit: 'bytes',
    why: 'Bound of the in-process LRU (vector bytes plus key and bookkeeping estimate); 0 disables it.',
    parse: int(0),
  },
  {
    key: 'apiKeys',
    env: 'TWINLANE_API_KEYS',
    default: '',
    unit: 'list',
    why: 'Comma-separated API keys; unset = no authentication.',
    parse: list,
  },
  {
    key: 'authOps',
    env: 'TWINLANE_AUTH_OPS',
    default: 'false',
    unit: 'boolean',
    why: 'Also require an API key on /health, /ready and /metrics (open by default so probes and scrapers need no secret).',
    parse: bool,
  },
  {
    key: 'imageFetchAllowlist',
    env: 'TWINLANE_IMAGE_FETCH_ALLOWLIST',
    default: '',
    unit: 'list',
    why: 'Hosts (host or host:port) exempt from the private-address refusal when fetching image URLs.',
    parse: list,
  },
  {
    key: 'executionProvider',
    env: 'TWINLANE_EXECUTION_PROVIDER',
    default: 'cpu',
    unit: 'cpu|cuda[:id]',
    why: 'ONNX Runtime execution provider for both lanes.',
    parse: provider,
  },
  {
    key: 'textThreads',
    env: 'TWINLANE_TEXT_THREADS',
    default: DERIVED,
    unit: 'threads',
    why: 'Text lane worker threads (each owns one ONNX session); derived from the core budget.',
    parse: int(1, 256),
  },
  {
    key: 'textIntraOpThreads',
    env: 'TWINLANE_TEXT_INTRA_OP_THREADS',
    default: DERIVED,
    unit: 'threads',
    why: "ONNX Runtime intra-op threads per text worker; workers × this is the lane's core budget.",
    parse: int(1, 256),
  },
  {
    key: 'textMaxQueue',
    env: 'TWINLANE_TEXT_MAX_QUEUE',
    default: DERIVED,
    unit: 'items',
    why: 'Items that may wait for the text lane before requests get 429 (default: 8 full batches per worker).',
    parse: int(1),
  },
  {
    key: 'textMaxBatchItems',
    env: 'TWINLANE_TEXT_MAX_BATCH_ITEMS',
    default: '32',
    unit: 'items',
    why: 'Most texts coalesced into one ONNX Runtime call.',
    parse: int(1, 4096),
  },
  {
    key: 'textMaxBatchTokens',
    env: 'TWINLANE_TEXT_MAX_BATCH_TOKENS',
    default: '8192',
    unit: 'tokens',
    why: 'Most padded tokens (items × longest) in one call, bounding the memory and latency of a batch.',
    parse: int(1),
  },
  {
    key: 'textNice',
    env: 'TWINLANE_TEXT_NICE',
    default: '0',
    unit: 'nice (0–19)',
    why: "CPU priority of the text lane's threads below the main thread (which answers cache hits and owns the sockets); 0 = equal.",
    parse: int(0, 19),
  },
  {
    key: 'textQueueTimeoutMs',
    env: 'TWINLANE_TEXT_QUEUE_TIMEOUT_MS',
    default: '30000',
    unit: 'ms',
    why: 'Default deadline of a text request (x-request-timeout-ms overrides it): items still queued when it passes are dropped and the request gets 504 deadline_exceeded; 0 = none.',
    parse: timeout,
  },
  {
    key: 'imageQueueTimeoutMs',
    env: 'TWINLANE_IMAGE_QUEUE_TIMEOUT_MS',
    default: '60000',
    unit: 'ms',
    why: 'Default deadline of an image request, as for text (URL fetching counts against it too); 0 = none.',
    parse: timeout,
  },
  {
    key: 'imageThreads',
    env: 'TWINLANE_IMAGE_THREADS',
    default: DERIVED,
    unit: 'threads',
    why: 'Image lane worker threads.',
    parse: int(1, 256),
  },
  {
    key: 'imageIntraOpThreads',
    env: 'TWINLANE_IMAGE_INTRA_OP_THREADS',
    default: DERIVED,
    unit: 'threads',
    why: 'ONNX Runtime intra-op threads per image worker.',
    parse: int(1, 256),
  },
  {
    key: 'imageMaxQueue',
    env: 'TWINLANE_IMAGE_MAX_QUEUE',
    default: DERIVED,
    unit: 'items',
    why: 'Images that may wait for the image lane before requests get 429.',
    parse: int(1),
  },
  {
    key: 'imageMaxBatchItems',
    env: 'TWINLANE_IMAGE_MAX_BATCH_ITEMS',
    default: '8',
    unit: 'items',
    why: 'Most images coalesced into one ONNX Runtime call.',
    parse: int(1, 1024),
  },
  {
    key: 'imageNice',
    env: 'TWINLANE_IMAGE_NICE',
    default: '19',
    unit: 'nice (0–19)',
    why: "CPU priority of the image lane's threads below the text lane and the main thread, so that when cores are short, images wait and text does not; 0 = equal.",
    parse: int(0, 19),
  },
  {
    key: 'workerMaxHeapMb',
    env: 'TWINLANE_WORKER_MAX_HEAP_MB',
    default: '0',
    unit: 'MiB',
    why: "V8 heap limit of each lane worker (ONNX Runtime's and libvips' native memory is outside it); a worker over it is ended and replaced, and only its batch fails (503 lane_failed); 0 = Node's default.",
    parse: int(0),
  },
  {
    key: 'testWorkerFaults',
    env: 'TWINLANE_TEST_WORKER_FAULTS',
    default: '',
    unit: 'list',
    why: 'For tests only, never in production: `throw:<marker>`, `exit:<marker>`, `oom:<marker>` make a lane worker die that way on a batch with an input holding the marker (oom needs TWINLANE_WORKER_MAX_HEAP_MB).',
    parse: faults,
  },
  {
    key: 'maxBodyBytes',
    env: 'TWINLANE_MAX_BODY_BYTES',
    default: '4194304',
    unit: 'bytes',
    why: 'Request bodies over this get 413 while streaming, before they are buffered whole.',
    parse: int(1),
  },
  {
    key: 'maxImageBodyBytes',
    env: 'TWINLANE_MAX_IMAGE_BODY_BYTES',
    default: '33554432',
    unit: 'bytes',
    why: 'Body limit of /embed/image (raw images, or JSON carrying base64 images), which need more room than text.',
    parse: int(1),
  },
  {
    key: 'maxImageBytes',
    env: 'TWINLANE_MAX_IMAGE_BYTES',
    default: '20971520',
    unit: 'bytes',
    why: 'Bytes per image, however it arrives (raw, base64, data URI, or fetched from a URL, where it is enforced while streaming).',
    parse: int(1),
  },
  {
    key: 'maxImagePixels',
    env: 'TWINLANE_MAX_IMAGE_PIXELS',
    default: '40000000',
    unit: 'pixels',
    why: 'Images declaring more pixels are refused from their header, before decoding (decompression bombs).',
    parse: int(1),
  },
  {
    key: 'imageFetchTimeoutMs',
    env: 'TWINLANE_IMAGE_FETCH_TIMEOUT_MS',
    default: '10000',
    unit: 'ms',
    why: 'Total time for fetching one image URL: DNS, connect, redirects and body.',
    parse: int(1),
  },
  {
    key: 'imageFetchConnectTimeoutMs',
    env: 'TWINLANE_IMAGE_FETCH_CONNECT_TIMEOUT_MS',
    default: '3000',
    unit: 'ms',
    why: "Time to connect to an image URL's host.",
    parse: int(1),
  },
  {
    key: 'imageFetchMaxRedirects',
    env: 'TWINLANE_IMAGE_FETCH_MAX_REDIRECTS',
    default: '3',
    unit: 'redirects',
    why: 'Redirects followed per image URL; every hop is checked again by the SSRF guard.',
    parse: int(0, 20),
  },
  {
    key: 'maxInputs',
    env: 'TWINLANE_MAX_INPUTS',
    default: '2048',
    unit: 'items',
    why: "Items per request (OpenAI's own limit is 2048).",
    parse: int(1),
  },
  {
    key: 'maxChars',
    env: 'TWINLANE_MAX_CHARS',
    default: '32768',
    unit: 'characters',
    why: 'Characters per text; longer texts get 422 before tokenisation costs anything.',
    parse: int(1),
  },
  {
    key: 'rateLimit',
    env: 'TWINLANE_RATE_LIMIT',
    default: '',
    unit: 'items/s',
    why: 'Per-client budget in items (texts or images) per second, per API key, else per client address; shared through Redis when TWINLANE_REDIS_URL is set; unset = off.',
    parse: optionalPositive,
  },
  {
    key: 'rateBurst',
    env: 'TWINLANE_RATE_BURST',
    default: '',
    unit: 'items',
    why: 'Per-client bucket size in items: how many a client may send at once after being idle; defaults to the rate.',
    parse: optionalPositive,
  },
  {
    key: 'hotAnswerBytes',
    env: 'TWINLANE_HOT_ANSWER_BYTES',
    default: '16777216',
    unit: 'bytes',
    why: 'Encoded answers kept for requests repeated byte for byte whose every item was a cache hit (text routes, bodies up to 4 KiB), sent again while their items stay in L1; 0 keeps none.',
    parse: int(0),
  },
  {
    key: 'shedAfterRefusalsPerSecond',
    env: 'TWINLANE_SHED_AFTER_REFUSALS_PER_S',
    default: '50',
    unit: 'requests/s',
    why: 'A lane at its queue bound that refused more requests than this in the last second is stormed: its requests are refused (429) before their bodies are read, so refusing costs the shared main thread microseconds.',
    parse: int(1),
  },
  {
    key: 'shedHoldMs',
    env: 'TWINLANE_SHED_HOLD_MS',
    default: '100',
    unit: 'ms',
    why: "How long a shed request's 429 is held before it is written, so a client that retries at once is refused at most 1000 / this times a second per connection; 0 answers at once.",
    parse: int(0, 10_000),
  },
  {
    key: 'shedReadMaxBytes',
    env: 'TWINLANE_SHED_READ_MAX_BYTES',
    default: '4096',
    unit: 'bytes',
    why: "A stormed lane's request whose body is announced at most this size is read and answered from L1 only (refused if an item is not there) instead of refused unread, so cached items stay answered through a storm; 0 refuses every one unread, the cheapest refusal.",
    parse: int(0, 1 << 20),
  },
  {
    key: 'shedProbesPerSecond',
    env: 'TWINLANE_SHED_PROBES_PER_S',
    default: '20',
    unit: 'requests/s',
    why: 'Requests of a stormed lane still read in full each second, so cached items keep being answered while it is stormed.',
    parse: int(0),
  },
  {
    key: 'wsMaxFrameBytes',
    env: 'TWINLANE_WS_MAX_FRAME_BYTES',
    default: '16777216',
    unit: 'bytes',
    why: 'Largest /ws frame (a JSON request, or one binary image); a larger frame closes the socket with 1009. JSON text requests are also held to TWINLANE_MAX_BODY_BYTES (error payload_too_large).',
    parse: int(1024, 1 << 30),
  },
  {
    key: 'wsMaxInFlightItems',
    env: 'TWINLANE_WS_MAX_IN_FLIGHT_ITEMS',
    default: '4096',
    unit: 'items',
    why: 'Items a /ws socket may have unanswered; a request that would pass it is refused at once with too_many_in_flight (a socket with nothing in flight takes any request within TWINLANE_MAX_INPUTS).',
    parse: int(1),
  },
  {
    key: 'wsMaxQueuedBytes',
    env: 'TWINLANE_WS_MAX_QUEUED_BYTES',
    default: '16777216',
    unit: 'bytes',
    why: 'Input bytes (texts, images) a /ws socket may hold unanswered; past it requests and binary images are refused with too_many_in_flight.',
    parse: int(1024),
  },
  {
    key: 'wsWindowBatches',
    env: 'TWINLANE_WS_WINDOW_BATCHES',
    default: '4',
    unit: 'batches',
    why: "Items of one /ws socket in a lane at once, in that lane's full batches: enough to keep the lane busy, while the rest waits at the socket where it can still be cancelled.",
    parse: int(1, 1024),
  },
  {
    key: 'wsHighWaterBytes',
    env: 'TWINLANE_WS_HIGH_WATER_BYTES',
    default: '1048576',
    unit: 'bytes',
    why: 'Unsent answer bytes above which a /ws socket stops sending work to the lanes until the client reads (resumes on drain).',
    parse: int(1),
  },
  {
    key: 'wsMaxBackpressureBytes',
    env: 'TWINLANE_WS_MAX_BACKPRESSURE_BYTES',
    default: '16777216',
    unit: 'bytes',
    why: 'Hard bound of unsent bytes per /ws socket: past it uWebSockets.js closes the socket at once (memory per socket stays bounded whatever the client does).',
    parse: int(1024),
  },
  {
    key: 'wsSlowReaderMs',
    env: 'TWINLANE_WS_SLOW_READER_MS',
    default: '10000',
    unit: 'ms',
    why: 'A /ws socket that stays above TWINLANE_WS_HIGH_WATER_BYTES this long is closed with 4008; what it was owed is dropped.',
    parse: int(1),
  },
  {
    key: 'wsIdleTimeoutSeconds',
    env: 'TWINLANE_WS_IDLE_TIMEOUT_SECONDS',
    default: '120',
    unit: 'seconds',
    why: 'A /ws socket that neither sends nor answers pings this long is closed (the server pings idle sockets; 0 = never).',
    parse: int(0, 960),
  },
  {
    key: 'wsMaxConnections',
    env: 'TWINLANE_WS_MAX_CONNECTIONS',
    default: '1024',
    unit: 'sockets',
    why: 'Open /ws sockets; further upgrades get 503 too_many_connections.',
    parse: int(1),
  },
  {
    key: 'accessLog',
    env: 'TWINLANE_ACCESS_LOG',
    default: 'false',
    unit: 'boolean',
    why: 'One JSON log line per answer: request id (x-request-id), method, path, status, milliseconds. Off by default: at tens of thousands of answers a second the log would cost more than the answers.',
    parse: bool,
  },
  {
    key: 'ui',
    env: 'TWINLANE_UI',
    default: 'true',
    unit: 'boolean',
    why: 'Serve GET /openapi.json, /docs (Swagger UI, from the package) and /playground; open like /health (the calls they make need a key when keys are configured). false: those paths answer 404.',
    parse: bool,
  },
  {
    key: 'drainDelayMs',
    env: 'TWINLANE_DRAIN_DELAY_MS',
    default: '0',
    unit: 'ms',
    why: "After SIGTERM, how long /ready answers 503 while every request is still served, so a balancer stops routing here before the port closes (set it above the balancer's health-check interval × fall count).",
    parse: int(0, 600000),
  },
  {
    key: 'shutdownTimeoutMs',
    env: 'TWINLANE_SHUTDOWN_TIMEOUT_MS',
    default: '30000',
    unit: 'ms',
    why: 'How long SIGTERM waits for in-flight requests (after the drain delay) before exiting anyway.',
    parse: int(0),
  },
];

function flagName(option: Option): string {
  return (
    '--' +
    option.env
      .replace(/^TWINLANE_/, '')
      .toLowerCase()
      .replace(/_/g, '-')
  );
}

export function helpText(): string {
  const rows = OPTIONS.map(
    (o) =>
      `  ${flagName(o).padEnd(28)} ${o.env.padEnd(32)} default: ${o.default === '' ? 'unset' : o.default} (${o.unit})\n      ${o.why}`,
  );
  return [
    'Usage: twinlane [--option value]...',
    '',
    'Every option is also an environment variable; flags win over the environment.',
    '',
    ...rows,
    '  --help',
    '',
  ].join('\n');
}

/** Flags win over env; both are raw strings until validated. */
function collectRaw(argv: readonly string[], env: NodeJS.ProcessEnv): Map<Option, string> {
  const raw = new Map<Option, string>();
  for (const option of OPTIONS) {
    const value = env[option.env];
    if (value !== undefined) raw.set(option, value);
  }
  const byFlag = new Map(OPTIONS.map((o) => [flagName(o), o]));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const option = byFlag.get(flag);
    if (!option) throw new ConfigError(`Unknown option ${flag}. Run with --help for the list.`);
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) throw new ConfigError(`${flag} needs a value.`);
    raw.set(option, value);
  }
  return raw;
}

/** Most workers a lane starts by default: each holds its own model session (weights and batch memory). */
const MAX_DEFAULT_WORKERS = 8;

/**
 * The default layout of a lane: the whole machine, as separate sessions of one intra-op thread each
 * (measured here on 2 cores, raw ONNX Runtime, MiniLM stand-in: 2 sessions × 1 thread 713 texts/s at
 * batch 8, 1 × 2 threads 494, 1 × 1 390), up to MAX_DEFAULT_WORKERS sessions, beyond which each
 * session gets the extra cores as intra-op threads. Both lanes get the whole machine: either alone can
 * use every core, and under mixed load the image lane's lower CPU priority keeps text first.
 */
function defaultLayout(cores: number): { threads: number; intraOp: number } {
  const threads = Math.max(1, Math.min(cores, MAX_DEFAULT_WORKERS));
  return { threads, intraOp: Math.max(1, Math.floor(cores / threads)) };
}

/**
 * Warnings for thread layouts measured to cost throughput or latency on this kind of machine (raw
 * ONNX Runtime, 2 cores): a lane asking for more threads than cores (4 sessions × 1: −7 % and twice
 * the batch time; 2 × 2: −8 to −15 %). Both lanes at the core count each (the defaults, twice the
 * cores together) is harmless: the image lane runs niced, so under mixed load text keeps the cores.
 */
export function configWarnings(config: Readonly<Config>, cores = os.availableParallelism()): string[] {
  const warnings: string[] = [];
  const text = config.textThreads * config.textIntraOpThreads;
  const image = config.imageModels.length === 0 ? 0 : config.imageThreads * config.imageIntraOpThreads;
  const lane = (name: string, threads: number, intra: number) =>
    `The ${name} lane asks for ${threads} worker(s) × ${intra} intra-op thread(s) = ${threads * intra} threads on ${cores} cores; past the core count a lane loses throughput and its batches take longer (see the README's thread budget).`;
  if (text > cores) warnings.push(lane('text', config.textThreads, config.textIntraOpThreads));
  if (image > cores) warnings.push(lane('image', config.imageThreads, config.imageIntraOpThreads));
  return warnings;
}

export function loadConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  cores = os.availableParallelism(),
): Readonly<Config> {
  const raw = collectRaw(argv, env);
  const values: Partial<Record<keyof Config, Parsed>> = {};
  for (const option of OPTIONS) {
    const given = raw.get(option);
    if (given !== undefined) values[option.key] = option.parse(given.trim(), option.env);
    else if (option.default !== DERIVED) values[option.key] = option.parse(option.default, option.env);
  }
  const text = defaultLayout(cores);
  const image = defaultLayout(cores);
  values.textThreads ??= text.threads;
  values.textIntraOpThreads ??= text.intraOp;
  values.imageThreads ??= image.threads;
  values.imageIntraOpThreads ??= image.intraOp;
  const config = values as Config;
  values.textMaxQueue ??= config.textMaxBatchItems * config.textThreads * 8;
  values.imageMaxQueue ??= config.imageMaxBatchItems * config.imageThreads * 8;
  values.rateBurst ??= config.rateLimit;

  if (config.rateBurst !== null && config.rateLimit === null) {
    throw new ConfigError('TWINLANE_RATE_BURST needs TWINLANE_RATE_LIMIT.');
  }
  if (config.authOps && config.apiKeys.length === 0) {
    throw new ConfigError('TWINLANE_AUTH_OPS needs TWINLANE_API_KEYS: there is no key to require.');
  }
  if (config.redisUrl !== null) url(config.redisUrl, 'TWINLANE_REDIS_URL');
  if (config.testWorkerFaults.some((f) => f.fault === 'oom') && config.workerMaxHeapMb === 0) {
    throw new ConfigError(
      'TWINLANE_TEST_WORKER_FAULTS oom needs TWINLANE_WORKER_MAX_HEAP_MB: without a limit it would take the whole process.',
    );
  }
  return Object.freeze(config);
}
