// Model folders: resolve a model id to a folder below the models directory, read the metadata the
// lanes need, and download the folder from a Hugging Face-style hub when it is missing (SPEC.md §3).
// The downloader lives in model-download.ts; this file decides *what* a kind needs and *how* to read it.
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { downloadModel, ModelError, stderrProgress } from './model-download.js';
import type { DownloadProgress } from './model-download.js';
import type { ImagePreprocess, ResizeKernel, TextPooling, TokenBound } from '../lanes/index.js';

export { ModelError } from './model-download.js';
export type { DownloadProgress } from './model-download.js';

export type ModelKind = 'text' | 'image';

/** Weight variants a folder may hold, by the names transformers.js and Xenova's exports use. */
export type ModelDtype = 'fp32' | 'q8';

export interface TextModelInfo {
  readonly kind: 'text';
  readonly id: string;
  readonly dir: string;
  readonly onnxPath: string;
  readonly dtype: ModelDtype;
  readonly dims: number;
  readonly maxTokens: number;
  readonly pooling: TextPooling;
  /**
   * An upper bound of the tokens a text of `n` UTF-16 units and `bytes` UTF-8 bytes can make, special
   * tokens included: WordPiece makes at most one per unit, byte-level BPE at most one per byte.
   */
  readonly tokenBound: TokenBound;
}

export interface ImageModelInfo {
  readonly kind: 'image';
  readonly id: string;
  readonly dir: string;
  readonly onnxPath: string;
  readonly dtype: ModelDtype;
  readonly dims: number;
  readonly preprocess: ImagePreprocess;
}

/** A folder's towers: text, image, or both (a CLIP-style folder, one space for both). */
export interface ModelTowers {
  readonly id: string;
  readonly text: TextModelInfo | null;
  readonly image: ImageModelInfo | null;
}

export type ModelInfo = TextModelInfo | ImageModelInfo;

export interface ResolveOptions {
  readonly modelsDir: string;
  readonly hubUrl: string;
  readonly offline: boolean;
  readonly revision?: string;
  readonly progress?: (event: DownloadProgress) => void;
  readonly fetchTimeoutMs?: number;
  /** Weight variant to load (default fp32). */
  readonly dtype?: ModelDtype;
}

/** `onnx/<base>.onnx`, or its quantized variant `onnx/<base>_quantized.onnx`. */
function onnxFile(base: string, dtype: ModelDtype): string {
  return `onnx/${base}${dtype === 'q8' ? '_quantized' : ''}.onnx`;
}

/** A CLIP-style folder's text tower: its own ONNX file and CLIP's BPE tokenizer files. */
const CLIP_TEXT_FILES = [
  'onnx/text_model.onnx',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'vocab.json',
  'merges.txt',
];

// Only what inference needs is fetched: hub repositories also carry PyTorch/TF weights and several
// ONNX variants (quantized, fp16) that would multiply the download for nothing. An image model's
// text tower is fetched when the hub has one (a full CLIP export serves both lanes).
function files(
  kind: ModelKind,
  dtype: ModelDtype,
): { readonly required: readonly string[]; readonly optional: readonly string[] } {
  if (kind === 'image') {
    return {
      required: [onnxFile('vision_model', dtype), 'preprocessor_config.json', 'config.json'],
      optional: CLIP_TEXT_FILES.map((f) => (f === 'onnx/text_model.onnx' ? onnxFile('text_model', dtype) : f)),
    };
  }
  return {
    required: [onnxFile('model', dtype), 'tokenizer.json', 'tokenizer_config.json'],
    optional: [
      'config.json',
      'sentence_bert_config.json',
      '1_Pooling/config.json',
      'special_tokens_map.json',
      'vocab.txt',
      'modules.json',
      'config_sentence_transformers.json',
    ],
  };
}

const SEGMENT = /^[A-Za-z0-9._-]+$/;

function validateId(id: unknown): asserts id is string {
  const segments = typeof id === 'string' ? id.split('/') : [];
  const ok =
    segments.length >= 1 && segments.length <= 2 && segments.every((s) => SEGMENT.test(s) && s !== '.' && s !== '..');
  if (!ok) {
    throw new ModelError(
      'model_invalid',
      `Invalid model id ${JSON.stringify(id)}: expected "name" or "org/name" made of letters, digits, ".", "_" and "-".`,
    );
  }
}

type FolderState =
  | { readonly state: 'complete' }
  | { readonly state: 'absent' }
  | { readonly state: 'incomplete'; readonly missing: readonly string[] };

async function folderState(dir: string, kind: ModelKind, dtype: ModelDtype): Promise<FolderState> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    if (errCode(err) === 'ENOENT') return { state: 'absent' };
    throw new ModelError('model_invalid', `Cannot read model folder ${dir}: ${String(err)}.`, { cause: err });
  }
  // An empty folder holds nothing to lose, and rename(2) may replace it, so it counts as absent.
  if (entries.length === 0) return { state: 'absent' };
  const missing: string[] = [];
  for (const file of files(kind, dtype).required) {
    const s = await stat(path.join(dir, file)).catch(() => null);
    if (s === null || !s.isFile()) missing.push(file);
  }
  return missing.length === 0 ? { state: 'complete' } : { state: 'incomplete', missing };
}

export async function resolveModel(id: string, kind: ModelKind, options: ResolveOptions): Promise<ModelInfo> {
  validateId(id);
  if (kind !== 'text' && kind !== 'image')
    throw new ModelError('model_invalid', `Unknown model kind ${JSON.stringify(kind)}.`);
  const modelsDir = path.resolve(options.modelsDir);
  const dir = path.join(modelsDir, ...id.split('/'));
  const dtype = options.dtype ?? 'fp32';
  const found = await folderState(dir, kind, dtype);
  if (found.state === 'complete') return readModelInfo(id, kind, dir, dtype);

  if (options.offline) {
    const what =
      found.state === 'absent' ? `is not in ${dir}` : `is incomplete in ${dir} (missing ${found.missing.join(', ')})`;
    throw new ModelError(
      'model_missing_offline',
      `The ${kind} model "${id}" ${what}, and offline mode (TWINLANE_OFFLINE) forbids downloading it. ` +
        `Set TWINLANE_MODELS_DIR to a folder that holds ${id}/, or unset TWINLANE_OFFLINE to download it from ${options.hubUrl}.`,
    );
  }
  if (found.state === 'incomplete') {
    // Never delete a folder we did not create: it may be someone's hand-made or half-copied model.
    throw new ModelError(
      'model_invalid',
      `The model folder ${dir} exists but lacks ${found.missing.join(', ')}; complete it or remove it so "${id}" can be downloaded again.`,
    );
  }

  await downloadModel({
    id,
    kind,
    target: dir,
    hubUrl: options.hubUrl,
    revision: options.revision ?? 'main',
    required: files(kind, dtype).required,
    optional: files(kind, dtype).optional,
    progress: options.progress ?? stderrProgress(id),
    fetchTimeoutMs: options.fetchTimeoutMs ?? 30_000,
    // Checked on the temporary folder so that a hub model with unusable metadata is never installed.
    validate: async (tmp) => {
      await readModelInfo(id, kind, tmp, dtype);
    },
    isComplete: async (folder) => (await folderState(folder, kind, dtype)).state === 'complete',
  });
  return readModelInfo(id, kind, dir, dtype);
}

/** Weight variants per tower: a CLIP-style folder's text tower follows the text lane's dtype, its vision tower the image lane's. */
export interface TowerDtypes {
  readonly text: ModelDtype;
  readonly image: ModelDtype;
}

/**
 * Every tower of a model: a text model's one, or an image model's vision tower and, when the folder
 * is CLIP-style (onnx/text_model*.onnx beside onnx/vision_model*.onnx), its text tower, in the same
 * space. A CLIP-style folder already on disk is read as such whichever lane's list names it; one to
 * download must be named in the image list (the hub's file list is known only once it is fetched).
 */
export async function resolveTowers(
  id: string,
  kind: ModelKind,
  options: Omit<ResolveOptions, 'dtype'>,
  dtypes: TowerDtypes,
): Promise<ModelTowers> {
  validateId(id);
  const dir = path.join(path.resolve(options.modelsDir), ...id.split('/'));
  const hasTextTower = async (dtype: ModelDtype) => isFile(path.join(dir, onnxFile('text_model', dtype)));
  const clip = kind === 'image' || (await hasTextTower('fp32')) || (await hasTextTower('q8'));
  const primary = await resolveModel(id, clip ? 'image' : 'text', {
    ...options,
    dtype: clip ? dtypes.image : dtypes.text,
  });
  if (primary.kind === 'text') return { id, text: primary, image: null };
  const fp32Text = await hasTextTower('fp32');
  if (!fp32Text && !(await hasTextTower('q8'))) {
    if (kind === 'text')
      throw new ModelError(
        'model_invalid',
        `${id} is named as a text model but ${dir} has no text tower (${onnxFile('text_model', dtypes.text)}).`,
      );
    return { id, text: null, image: primary };
  }
  if (!(await hasTextTower(dtypes.text))) {
    throw new ModelError(
      'model_invalid',
      `${id} has a text tower but no ${onnxFile('text_model', dtypes.text)} for the text lane's dtype ${dtypes.text}; add it, or set TWINLANE_TEXT_DTYPE to ${fp32Text ? 'fp32' : 'q8'}.`,
    );
  }
  const text = await readClipTextInfo(id, primary.dir, dtypes.text);
  if (text.dims !== primary.dims)
    throw new ModelError(
      'model_invalid',
      `${id}: its text tower makes ${text.dims}-d vectors and its vision tower ${primary.dims}-d; one space needs one size.`,
    );
  return { id, text, image: primary };
}

async function isFile(file: string): Promise<boolean> {
  return (await stat(file).catch(() => null))?.isFile() ?? false;
}

// ---- metadata -------------------------------------------------------------------------------

type Json = Record<string, unknown>;

function errCode(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

async function readJson(file: string, optional: boolean): Promise<Json | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (optional && errCode(err) === 'ENOENT') return null;
    throw new ModelError('model_invalid', `Cannot read ${file}: ${String(err)}.`, { cause: err });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ModelError('model_invalid', `${file} is not valid JSON: ${(err as Error).message}.`, { cause: err });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ModelError('model_invalid', `${file} must hold a JSON object.`);
  }
  return value as Json;
}

function bad(file: string, key: string, want: string, value: unknown): ModelError {
  return new ModelError('model_invalid', `${file}: "${key}" must be ${want}, got ${JSON.stringify(value)}.`);
}

function posInt(obj: Json | null, key: string, file: string): number | undefined {
  const v = obj?.[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw bad(file, key, 'a positive integer', v);
  return v;
}

function bool(obj: Json, key: string, file: string, fallback: boolean): boolean {
  const v = obj[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw bad(file, key, 'true or false', v);
  return v;
}

function triple(
  obj: Json,
  key: string,
  file: string,
  fallback: readonly [number, number, number],
  positive = false,
): readonly [number, number, number] {
  const v = obj[key];
  if (v === undefined || v === null) return fallback;
  // std divides every pixel, so a zero there would turn images into Infinity/NaN.
  if (
    !Array.isArray(v) ||
    v.length !== 3 ||
    !v.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0))
  ) {
    throw bad(file, key, positive ? 'three positive numbers' : 'three numbers', v);
  }
  return [v[0] as number, v[1] as number, v[2] as number];
}

/** A size field that may be a bare number or an object holding one of `keys` (HF changed formats over time). */
function sizeField(obj: Json, key: string, file: string, keys: readonly string[]): Json | number | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v <= 0) throw bad(file, key, 'a positive integer', v);
    return v;
  }
  if (typeof v === 'object' && !Array.isArray(v) && keys.some((k) => k in v)) return v as Json;
  throw bad(file, key, `a number or an object with ${keys.join('/')}`, v);
}

// transformers writes model_max_length = int(1e30) when a tokenizer has no limit of its own.
const NO_LIMIT = 1e12;

async function readTextInfo(id: string, dir: string, dtype: ModelDtype): Promise<TextModelInfo> {
  const configFile = path.join(dir, 'config.json');
  const poolingFile = path.join(dir, '1_Pooling', 'config.json');
  const sbertFile = path.join(dir, 'sentence_bert_config.json');
  const tokFile = path.join(dir, 'tokenizer_config.json');
  const [config, poolingCfg, sbert, tok] = await Promise.all([
    readJson(configFile, true),
    readJson(poolingFile, true),
    readJson(sbertFile, true),
    readJson(tokFile, false),
  ]);

  const dims = posInt(poolingCfg, 'word_embedding_dimension', poolingFile) ?? posInt(config, 'hidden_size', configFile);
  if (dims === undefined) {
    throw new ModelError(
      'model_invalid',
      `No embedding size: neither ${poolingFile} (word_embedding_dimension) nor ${configFile} (hidden_size) gives one.`,
    );
  }

  // sentence-transformers truncates at max_seq_length, which is often below the tokenizer's limit.
  let maxTokens = posInt(sbert, 'max_seq_length', sbertFile);
  if (maxTokens === undefined) {
    const v = tok?.['model_max_length'];
    if (typeof v === 'number' && v >= NO_LIMIT) maxTokens = posInt(config, 'max_position_embeddings', configFile);
    else maxTokens = posInt(tok, 'model_max_length', tokFile);
  }
  if (maxTokens === undefined) {
    throw new ModelError(
      'model_invalid',
      `No token limit: neither ${sbertFile} (max_seq_length) nor ${tokFile} (model_max_length) gives one.`,
    );
  }

  let pooling: TextPooling = 'mean';
  if (poolingCfg !== null) {
    const on = Object.entries(poolingCfg)
      .filter(([k, v]) => k.startsWith('pooling_mode_') && v === true)
      .map(([k]) => k);
    // Several modes at once mean concatenated vectors, which the lanes do not compute.
    if (on.length === 1 && on[0] === 'pooling_mode_cls_token') pooling = 'cls';
    else if (!(on.length === 1 && on[0] === 'pooling_mode_mean_tokens')) {
      throw new ModelError(
        'model_invalid',
        `${poolingFile}: only mean or CLS pooling alone is supported, found ${on.length === 0 ? 'none' : on.join(' + ')}.`,
      );
    }
  }
  return {
    kind: 'text',
    id,
    dir,
    onnxPath: path.join(dir, onnxFile('model', dtype)),
    dtype,
    dims,
    maxTokens,
    pooling,
    tokenBound: await tokenBoundOf(dir),
  };
}

/** WordPiece makes at most one token per UTF-16 unit; other models (BPE, Unigram with byte fallback) one per UTF-8 byte. */
async function tokenBoundOf(dir: string): Promise<TokenBound> {
  const tokenizer = await readJson(path.join(dir, 'tokenizer.json'), false);
  const model = tokenizer?.['model'];
  const type = typeof model === 'object' && model !== null ? (model as Json)['type'] : undefined;
  return type === 'WordPiece' ? 'utf16' : 'utf8';
}

/**
 * A CLIP-style folder's text tower: CLIP's BPE tokenizer (its model_max_length, 77), `text_embeds`
 * pooled inside the graph at the end-of-text token, dims from the full CLIP config's projection_dim.
 */
async function readClipTextInfo(id: string, dir: string, dtype: ModelDtype): Promise<TextModelInfo> {
  const configFile = path.join(dir, 'config.json');
  const tokFile = path.join(dir, 'tokenizer_config.json');
  const [config, tok] = await Promise.all([readJson(configFile, false), readJson(tokFile, false)]);
  const textConfig = config?.['text_config'];
  const dims =
    posInt(config, 'projection_dim', configFile) ??
    (typeof textConfig === 'object' && textConfig !== null
      ? posInt(textConfig as Json, 'projection_dim', configFile)
      : undefined);
  if (dims === undefined) throw new ModelError('model_invalid', `${configFile}: no projection_dim for the text tower.`);
  const maxTokens = posInt(tok, 'model_max_length', tokFile);
  if (maxTokens === undefined || maxTokens >= NO_LIMIT)
    throw new ModelError('model_invalid', `${tokFile}: CLIP's text tower needs a model_max_length (77).`);
  return {
    kind: 'text',
    id,
    dir,
    onnxPath: path.join(dir, onnxFile('text_model', dtype)),
    dtype,
    dims,
    maxTokens,
    pooling: 'graph',
    tokenBound: await tokenBoundOf(dir),
  };
}

const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

async function readImageInfo(id: string, dir: string, dtype: ModelDtype): Promise<ImageModelInfo> {
  const configFile = path.join(dir, 'config.json');
  const preFile = path.join(dir, 'preprocessor_config.json');
  const [config, pre] = await Promise.all([readJson(configFile, false), readJson(preFile, false)]);
  if (config === null || pre === null)
    throw new ModelError('model_invalid', `Cannot read ${configFile} or ${preFile}.`);

  // A vision-only config has projection_dim at the top; a full CLIP config has it there and in vision_config.
  const vision = config['vision_config'];
  const dims =
    posInt(config, 'projection_dim', configFile) ??
    (typeof vision === 'object' && vision !== null ? posInt(vision as Json, 'projection_dim', configFile) : undefined);
  if (dims === undefined)
    throw new ModelError('model_invalid', `${configFile}: no projection_dim (top level or vision_config).`);

  const rescale = pre['rescale_factor'] ?? 1 / 255;
  if (typeof rescale !== 'number' || !(rescale > 0)) throw bad(preFile, 'rescale_factor', 'a positive number', rescale);
  const normalize = bool(pre, 'do_normalize', preFile, true);
  // Defaults are CLIPImageProcessor's, which is what transformers applies when a key is absent.
  const preprocess: ImagePreprocess = {
    resize: bool(pre, 'do_resize', preFile, true) ? resizeOf(pre, preFile) : null,
    kernel: kernelOf(pre, preFile),
    crop: bool(pre, 'do_center_crop', preFile, true) ? cropOf(pre, preFile) : null,
    rescaleFactor: bool(pre, 'do_rescale', preFile, true) ? rescale : 1,
    mean: normalize ? triple(pre, 'image_mean', preFile, CLIP_MEAN) : [0, 0, 0],
    std: normalize ? triple(pre, 'image_std', preFile, CLIP_STD, true) : [1, 1, 1],
    convertRgb: bool(pre, 'do_convert_rgb', preFile, true),
  };
  if (!preprocess.crop && !(preprocess.resize && 'height' in preprocess.resize)) {
    throw new ModelError(
      'model_invalid',
      `${preFile}: images would keep their own sizes (no centre crop and no exact resize), so they cannot be batched into one tensor.`,
    );
  }
  return { kind: 'image', id, dir, onnxPath: path.join(dir, onnxFile('vision_model', dtype)), dtype, dims, preprocess };
}

/** `size` as transformers reads it: a bare number is the shortest edge (old CLIP configs). */
function resizeOf(pre: Json, file: string): NonNullable<ImagePreprocess['resize']> {
  const size = sizeField(pre, 'size', file, ['shortest_edge', 'height']);
  if (size === undefined) return { shortestEdge: 224 };
  if (typeof size === 'number') return { shortestEdge: size };
  const shortestEdge = posInt(size, 'shortest_edge', file);
  if (shortestEdge !== undefined) return { shortestEdge };
  const height = posInt(size, 'height', file);
  const width = posInt(size, 'width', file);
  if (height === undefined || width === undefined) throw bad(file, 'size', '{shortest_edge} or {height, width}', size);
  return { height, width };
}

function cropOf(pre: Json, file: string): NonNullable<ImagePreprocess['crop']> {
  const crop = sizeField(pre, 'crop_size', file, ['height', 'width']);
  if (crop === undefined) return { height: 224, width: 224 };
  if (typeof crop === 'number') return { height: crop, width: crop };
  const height = posInt(crop, 'height', file);
  const width = posInt(crop, 'width', file) ?? height;
  if (height === undefined || width === undefined) throw bad(file, 'crop_size', '{height, width}', crop);
  return { height, width };
}

/** PIL's resample codes; BOX and HAMMING have no sharp kernel and take the nearest in character (linear). */
const KERNELS: Readonly<Record<number, ResizeKernel>> = {
  0: 'nearest',
  1: 'lanczos3',
  2: 'linear',
  3: 'cubic',
  4: 'linear',
  5: 'linear',
};

function kernelOf(pre: Json, file: string): ResizeKernel {
  const v = pre['resample'];
  if (v === undefined || v === null) return 'cubic';
  const kernel = typeof v === 'number' ? KERNELS[v] : undefined;
  if (!kernel) throw bad(file, 'resample', 'a PIL resample code from 0 to 5', v);
  return kernel;
}

function readModelInfo(id: string, kind: ModelKind, dir: string, dtype: ModelDtype): Promise<ModelInfo> {
  return kind === 'text' ? readTextInfo(id, dir, dtype) : readImageInfo(id, dir, dtype);
}
