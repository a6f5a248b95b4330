import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ModelError, resolveModel, resolveTowers } from '../../src/models.js';
import type { DownloadProgress, ImageModelInfo, ResolveOptions, TextModelInfo } from '../../src/models.js';
import { stderrProgress } from '../../src/model-download.js';

const SHARED = path.resolve(process.env.TWINLANE_MODELS_DIR ?? path.resolve('../shared/models'));
const TEXT_ID = 'twinlane/minilm-l6-standin';
const IMAGE_ID = 'twinlane/clip-vision-standin';
const CLIP_ID = 'twinlane/clip-standin';
const FP32 = { text: 'fp32', image: 'fp32' } as const;

// ---- a fake Hugging Face hub serving the shared model folders ----------------------------------

/** What the fake hub does wrong; reset after every test. */
interface Faults {
  modelMissing?: boolean;
  apiMissing?: boolean;
  missingFile?: string;
  truncateFile?: string;
  stallFile?: string;
  wrongApiShaFile?: string;
  wrongEtagFile?: string;
}

let faults: Faults = {};
const requests: string[] = [];
let server: Server;
let hubUrl: string;
const tempDirs: string[] = [];

const sha256 = (buf: Buffer): string => createHash('sha256').update(buf).digest('hex');
const WRONG_SHA = 'f'.repeat(64);

async function walk(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const rel = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) out.push(...(await walk(path.join(dir, entry.name), rel)));
    else out.push(rel);
  }
  return out.sort();
}

/** Like HF, only big binaries are LFS files (with sha256); the small JSON/text files are plain git blobs. */
const isLfs = (file: string): boolean => file.endsWith('.onnx');

function modelDir(id: string): string | null {
  if (!/^twinlane\/[a-z0-9-]+$/.test(id)) return null;
  return path.join(SHARED, ...id.split('/'));
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://hub');
  requests.push(url.pathname);
  const notFound = (): void => {
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"Entry not found"}');
  };

  const api = /^\/api\/models\/(.+)\/revision\/([^/]+)$/.exec(url.pathname);
  if (api !== null) {
    const dir = modelDir(decodeURIComponent(api[1] ?? ''));
    if (dir === null || faults.modelMissing === true || faults.apiMissing === true) return notFound();
    const siblings = [];
    for (const file of await walk(dir)) {
      const buf = await readFile(path.join(dir, file));
      const sha = file === faults.wrongApiShaFile ? WRONG_SHA : sha256(buf);
      siblings.push({
        rfilename: file,
        size: buf.length,
        ...(isLfs(file) ? { lfs: { sha256: sha, size: buf.length } } : {}),
      });
    }
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ id: api[1], sha: 'abc', siblings }));
    return;
  }

  // HF answers LFS files with a redirect to its CDN; the LFS size and sha256 ride on that redirect.
  const resolve = /^\/(.+?)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
  const cdn = /^\/cdn\/(.+?\/.+?)\/(.+)$/.exec(url.pathname);
  const match =
    resolve !== null ? { id: resolve[1], file: resolve[3] } : cdn !== null ? { id: cdn[1], file: cdn[2] } : null;
  if (match === null) return notFound();
  const id = decodeURIComponent(match.id ?? '');
  const file = decodeURIComponent(match.file ?? '');
  const dir = modelDir(id);
  if (dir === null || faults.modelMissing === true || file === faults.missingFile || file.split('/').includes('..'))
    return notFound();
  let buf: Buffer;
  try {
    buf = await readFile(path.join(dir, file));
  } catch {
    return notFound();
  }
  if (resolve !== null && isLfs(file)) {
    const etag = file === faults.wrongEtagFile ? WRONG_SHA : sha256(buf);
    res
      .writeHead(302, {
        location: `/cdn/${id}/${file}`,
        'x-linked-size': String(buf.length),
        'x-linked-etag': `"${etag}"`,
      })
      .end();
    return;
  }
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(buf.length) });
  if (file === faults.truncateFile) {
    res.write(buf.subarray(0, Math.floor(buf.length / 2)), () => res.destroy());
  } else if (file === faults.stallFile) {
    res.write(buf.subarray(0, 1024));
  } else {
    res.end(buf);
  }
}

beforeAll(async () => {
  server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      res.destroy(err instanceof Error ? err : new Error(String(err)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  hubUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(() => {
  faults = {};
  requests.length = 0;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
});

// ---- helpers ----------------------------------------------------------------------------------

async function freshModelsDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'twinlane-models-'));
  tempDirs.push(dir);
  return dir;
}

function online(modelsDir: string, extra: Partial<ResolveOptions> = {}): ResolveOptions {
  return { modelsDir, hubUrl, offline: false, progress: () => {}, ...extra };
}

async function expectModelError(promise: Promise<unknown>, code: ModelError['code']): Promise<ModelError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ModelError);
  expect((err as ModelError).code).toBe(code);
  return err as ModelError;
}

/** Everything under a models dir, so a test can show that a failure left nothing behind. */
async function leftovers(modelsDir: string): Promise<string[]> {
  return walk(modelsDir);
}

async function fileHashes(dir: string, files: readonly string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of files) out[f] = sha256(await readFile(path.join(dir, f)));
  return out;
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

const TEXT_FILES = [
  '1_Pooling/config.json',
  'config.json',
  'config_sentence_transformers.json',
  'modules.json',
  'onnx/model.onnx',
  'sentence_bert_config.json',
  'special_tokens_map.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'vocab.txt',
];
const IMAGE_FILES = ['config.json', 'onnx/vision_model.onnx', 'preprocessor_config.json'];

// ---- tests ------------------------------------------------------------------------------------

describe('resolveModel from an existing folder', () => {
  it('reads the text model metadata from the read-only shared folder without touching the network', async () => {
    // An unreachable hub proves nothing is fetched for a complete folder.
    const info = await resolveModel(TEXT_ID, 'text', {
      modelsDir: SHARED,
      hubUrl: 'http://127.0.0.1:9',
      offline: false,
    });
    const dir = path.join(SHARED, 'twinlane', 'minilm-l6-standin');
    expect(info).toEqual<TextModelInfo>({
      kind: 'text',
      id: TEXT_ID,
      dir,
      onnxPath: path.join(dir, 'onnx', 'model.onnx'),
      dtype: 'fp32',
      dims: 384,
      maxTokens: 256,
      pooling: 'mean',
      tokenBound: 'utf16',
    });
  });

  it('picks the quantized weights with dtype q8', async () => {
    const info = await resolveModel(TEXT_ID, 'text', { modelsDir: SHARED, hubUrl, offline: true, dtype: 'q8' });
    expect(info).toMatchObject({
      dtype: 'q8',
      onnxPath: path.join(SHARED, 'twinlane', 'minilm-l6-standin', 'onnx', 'model_quantized.onnx'),
    });
    await expect(
      resolveModel(IMAGE_ID, 'image', { modelsDir: SHARED, hubUrl, offline: true, dtype: 'q8' }),
    ).rejects.toThrow(/vision_model_quantized\.onnx/);
  });

  it('reads both towers of a CLIP-style folder, whichever lane names it: BPE text tower of 77 tokens pooled in the graph', async () => {
    for (const kind of ['image', 'text'] as const) {
      const towers = await resolveTowers(CLIP_ID, kind, { modelsDir: SHARED, hubUrl, offline: true }, FP32);
      const dir = path.join(SHARED, 'twinlane', 'clip-standin');
      expect(towers.image).toMatchObject({
        kind: 'image',
        dims: 512,
        onnxPath: path.join(dir, 'onnx', 'vision_model.onnx'),
      });
      expect(towers.text).toMatchObject({
        kind: 'text',
        dims: 512,
        maxTokens: 77,
        pooling: 'graph',
        tokenBound: 'utf8',
        onnxPath: path.join(dir, 'onnx', 'text_model.onnx'),
      });
    }
    const visionOnly = await resolveTowers(IMAGE_ID, 'image', { modelsDir: SHARED, hubUrl, offline: true }, FP32);
    await expect(
      resolveTowers(CLIP_ID, 'text', { modelsDir: SHARED, hubUrl, offline: true }, { text: 'q8', image: 'fp32' }),
    ).rejects.toThrow(/text_model_quantized\.onnx.*TWINLANE_TEXT_DTYPE to fp32/);
    await expect(resolveTowers(IMAGE_ID, 'text', { modelsDir: SHARED, hubUrl, offline: true }, FP32)).rejects.toThrow(
      /missing onnx\/model\.onnx/,
    );
    expect(visionOnly.text).toBeNull();
  });

  it('reads the image model dims and the preprocessing values of its preprocessor_config.json', async () => {
    const info = await resolveModel(IMAGE_ID, 'image', { modelsDir: SHARED, hubUrl, offline: true });
    const dir = path.join(SHARED, 'twinlane', 'clip-vision-standin');
    expect(info).toEqual<ImageModelInfo>({
      kind: 'image',
      id: IMAGE_ID,
      dir,
      onnxPath: path.join(dir, 'onnx', 'vision_model.onnx'),
      dtype: 'fp32',
      dims: 512,
      preprocess: {
        resize: { shortestEdge: 224 },
        kernel: 'cubic',
        crop: { height: 224, width: 224 },
        rescaleFactor: 0.00392156862745098,
        mean: [0.48145466, 0.4578275, 0.40821073],
        std: [0.26862954, 0.26130258, 0.27577711],
        convertRgb: true,
      },
    });
    expect(requests).toEqual([]);
  });

  it('takes the image dims from vision_config of a full CLIP config and CLS pooling from 1_Pooling', async () => {
    const modelsDir = await freshModelsDir();
    const clip = path.join(modelsDir, 'org', 'clip');
    await mkdir(path.join(clip, 'onnx'), { recursive: true });
    await writeFile(path.join(clip, 'onnx', 'vision_model.onnx'), 'x');
    await writeFile(
      path.join(clip, 'config.json'),
      JSON.stringify({ model_type: 'clip', vision_config: { projection_dim: 768 } }),
    );
    await writeFile(path.join(clip, 'preprocessor_config.json'), JSON.stringify({ size: 336, crop_size: 336 }));
    const image = await resolveModel('org/clip', 'image', { modelsDir, hubUrl, offline: true });
    expect(image.dims).toBe(768);
    expect(image.kind === 'image' && image.preprocess).toMatchObject({
      resize: { shortestEdge: 336 },
      crop: { height: 336, width: 336 },
    });

    const bert = path.join(modelsDir, 'bert');
    await mkdir(path.join(bert, 'onnx'), { recursive: true });
    await mkdir(path.join(bert, '1_Pooling'));
    await writeFile(path.join(bert, 'onnx', 'model.onnx'), 'x');
    await writeFile(path.join(bert, 'tokenizer.json'), '{}');
    await writeFile(path.join(bert, 'tokenizer_config.json'), JSON.stringify({ model_max_length: 512 }));
    await writeFile(path.join(bert, 'config.json'), JSON.stringify({ hidden_size: 768 }));
    await writeFile(
      path.join(bert, '1_Pooling', 'config.json'),
      JSON.stringify({ pooling_mode_cls_token: true, pooling_mode_mean_tokens: false }),
    );
    const text = await resolveModel('bert', 'text', { modelsDir, hubUrl, offline: true });
    expect(text).toMatchObject({ dims: 768, maxTokens: 512, pooling: 'cls' });
  });

  it('follows every preprocessing switch of preprocessor_config.json', async () => {
    const modelsDir = await freshModelsDir();
    const dir = path.join(modelsDir, 'org', 'vit');
    await mkdir(path.join(dir, 'onnx'), { recursive: true });
    await writeFile(path.join(dir, 'onnx', 'vision_model.onnx'), 'x');
    await writeFile(path.join(dir, 'config.json'), JSON.stringify({ projection_dim: 256 }));
    const withConfig = async (pre: object) => {
      await writeFile(path.join(dir, 'preprocessor_config.json'), JSON.stringify(pre));
      const info = await resolveModel('org/vit', 'image', { modelsDir, hubUrl, offline: true });
      return info.kind === 'image' ? info.preprocess : null;
    };
    expect(
      await withConfig({
        size: { height: 384, width: 256 },
        do_center_crop: false,
        resample: 2,
        do_normalize: false,
        do_rescale: false,
        do_convert_rgb: false,
      }),
    ).toEqual({
      resize: { height: 384, width: 256 },
      kernel: 'linear',
      crop: null,
      rescaleFactor: 1,
      mean: [0, 0, 0],
      std: [1, 1, 1],
      convertRgb: false,
    });
    expect(await withConfig({ do_resize: false, crop_size: { height: 200, width: 300 }, resample: 0 })).toMatchObject({
      resize: null,
      crop: { height: 200, width: 300 },
      kernel: 'nearest',
    });
    // Without a crop, a shortest-edge resize keeps each image's own aspect: nothing to batch.
    const error = await expectModelError(
      withConfig({ size: { shortest_edge: 224 }, do_center_crop: false }),
      'model_invalid',
    );
    expect(error.message).toContain('cannot be batched');
    await expectModelError(withConfig({ resample: 9 }), 'model_invalid');
  });

  it('rejects unreadable metadata with model_invalid naming the file', async () => {
    const modelsDir = await freshModelsDir();
    const dir = path.join(modelsDir, 'org', 'broken');
    await mkdir(path.join(dir, 'onnx'), { recursive: true });
    await writeFile(path.join(dir, 'onnx', 'model.onnx'), 'x');
    await writeFile(path.join(dir, 'tokenizer.json'), '{}');
    await writeFile(path.join(dir, 'tokenizer_config.json'), '{"model_max_length": 512');
    const badJson = await expectModelError(
      resolveModel('org/broken', 'text', { modelsDir, hubUrl, offline: true }),
      'model_invalid',
    );
    expect(badJson.message).toContain(path.join(dir, 'tokenizer_config.json'));

    await writeFile(path.join(dir, 'tokenizer_config.json'), '{"model_max_length": 512}');
    const noDims = await expectModelError(
      resolveModel('org/broken', 'text', { modelsDir, hubUrl, offline: true }),
      'model_invalid',
    );
    expect(noDims.message).toContain(path.join(dir, 'config.json'));
  });

  it('refuses to download over an incomplete folder and leaves it as it was', async () => {
    const modelsDir = await freshModelsDir();
    const dir = path.join(modelsDir, TEXT_ID);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'tokenizer.json'), '{}');
    const err = await expectModelError(resolveModel(TEXT_ID, 'text', online(modelsDir)), 'model_invalid');
    expect(err.message).toContain('onnx/model.onnx');
    expect(await leftovers(modelsDir)).toEqual([`${TEXT_ID}/tokenizer.json`]);
    expect(requests).toEqual([]);
  });
});

describe('resolveModel validation and offline mode', () => {
  it.each([
    '',
    '..',
    '../x',
    'a/../b',
    '/abs',
    '/abs/path',
    'a/b/c',
    'a b',
    'a\\b',
    'org/.',
    'org//name',
    'org/',
    'ünïcode',
  ])('rejects the invalid id %j', async (id) => {
    const modelsDir = await freshModelsDir();
    await expectModelError(resolveModel(id, 'text', online(modelsDir)), 'model_invalid');
    expect(await leftovers(modelsDir)).toEqual([]);
  });

  it('fails with model_missing_offline naming the id, the folder and the fix when offline', async () => {
    const modelsDir = await freshModelsDir();
    const err = await expectModelError(
      resolveModel('org/absent', 'text', { modelsDir, hubUrl, offline: true }),
      'model_missing_offline',
    );
    expect(err.message).toContain('org/absent');
    expect(err.message).toContain(path.join(modelsDir, 'org', 'absent'));
    expect(err.message).toContain('TWINLANE_MODELS_DIR');
    expect(err.message).toContain('TWINLANE_OFFLINE');
    expect(requests).toEqual([]);
    expect(await leftovers(modelsDir)).toEqual([]);
  });
});

describe('resolveModel downloading from the hub', () => {
  it('downloads the text model byte for byte with a manifest and progress events', async () => {
    const modelsDir = await freshModelsDir();
    const events: DownloadProgress[] = [];
    const info = await resolveModel(TEXT_ID, 'text', online(modelsDir, { progress: (e) => events.push(e) }));
    const dir = path.join(modelsDir, 'twinlane', 'minilm-l6-standin');
    expect(info).toMatchObject({
      dir,
      onnxPath: path.join(dir, 'onnx', 'model.onnx'),
      dims: 384,
      maxTokens: 256,
      pooling: 'mean',
    });

    expect(await walk(dir)).toEqual([...TEXT_FILES, 'twinlane-manifest.json'].sort());
    const sourceDir = path.join(SHARED, TEXT_ID);
    const expected = await fileHashes(sourceDir, TEXT_FILES);
    expect(await fileHashes(dir, TEXT_FILES)).toEqual(expected);
    // README.md and anything else the hub lists is never fetched.
    expect(requests.filter((r) => r.includes('README'))).toEqual([]);

    const manifest = JSON.parse(await readFile(path.join(dir, 'twinlane-manifest.json'), 'utf8')) as {
      id: string;
      kind: string;
      revision: string;
      hubUrl: string;
      downloadedAt: string;
      files: { path: string; size: number; sha256: string }[];
    };
    expect(manifest).toMatchObject({ id: TEXT_ID, kind: 'text', revision: 'main', hubUrl });
    expect(Number.isNaN(Date.parse(manifest.downloadedAt))).toBe(false);
    expect(Object.fromEntries(manifest.files.map((f) => [f.path, f.sha256]))).toEqual(expected);
    const onnxSize = (await stat(path.join(sourceDir, 'onnx', 'model.onnx'))).size;
    expect(manifest.files.find((f) => f.path === 'onnx/model.onnx')?.size).toBe(onnxSize);

    const onnxEvents = events.filter((e) => e.file === 'onnx/model.onnx');
    expect(onnxEvents[0]).toEqual({ file: 'onnx/model.onnx', receivedBytes: 0, totalBytes: onnxSize, done: false });
    expect(onnxEvents.at(-1)).toEqual({
      file: 'onnx/model.onnx',
      receivedBytes: onnxSize,
      totalBytes: onnxSize,
      done: true,
    });
    expect(onnxEvents.length).toBeGreaterThan(2);
    const received = onnxEvents.map((e) => e.receivedBytes);
    expect(received).toEqual([...received].sort((a, b) => a - b));
    expect(new Set(events.filter((e) => e.done).map((e) => e.file))).toEqual(new Set(TEXT_FILES));

    // The installed folder is now complete, so offline use works and nothing more is fetched.
    requests.length = 0;
    await expect(resolveModel(TEXT_ID, 'text', { modelsDir, hubUrl, offline: true })).resolves.toEqual(info);
    expect(requests).toEqual([]);
  });

  it('downloads the image model through the CDN redirect', async () => {
    const modelsDir = await freshModelsDir();
    const info = await resolveModel(IMAGE_ID, 'image', online(modelsDir));
    expect(info.dims).toBe(512);
    const dir = path.join(modelsDir, IMAGE_ID);
    expect(await walk(dir)).toEqual([...IMAGE_FILES, 'twinlane-manifest.json'].sort());
    expect(await fileHashes(dir, IMAGE_FILES)).toEqual(await fileHashes(path.join(SHARED, IMAGE_ID), IMAGE_FILES));
    expect(requests).toContain(`/cdn/${IMAGE_ID}/onnx/vision_model.onnx`);
  });

  it('falls back to the fixed file list when the hub has no API, skipping optional files that 404', async () => {
    faults = { apiMissing: true, missingFile: 'vocab.txt' };
    const modelsDir = await freshModelsDir();
    const info = await resolveModel(TEXT_ID, 'text', online(modelsDir));
    expect(info).toMatchObject({ dims: 384, maxTokens: 256, pooling: 'mean' });
    const present = TEXT_FILES.filter((f) => f !== 'vocab.txt');
    expect(await walk(info.dir)).toEqual([...present, 'twinlane-manifest.json'].sort());
    expect(await fileHashes(info.dir, present)).toEqual(await fileHashes(path.join(SHARED, TEXT_ID), present));
  });

  it('fails with model_download_failed on a truncated file and leaves nothing behind', async () => {
    faults = { truncateFile: 'tokenizer.json' };
    const modelsDir = await freshModelsDir();
    const err = await expectModelError(resolveModel(TEXT_ID, 'text', online(modelsDir)), 'model_download_failed');
    expect(err.message).toContain('tokenizer.json');
    expect(await exists(path.join(modelsDir, TEXT_ID))).toBe(false);
    expect((await leftovers(modelsDir)).filter((f) => f.includes('.partial-'))).toEqual([]);
    expect(await readdir(modelsDir)).toEqual([]);
  });

  it('fails on a truncated LFS file even without the API to tell its size', async () => {
    faults = { apiMissing: true, truncateFile: 'onnx/model.onnx' };
    const modelsDir = await freshModelsDir();
    const err = await expectModelError(resolveModel(TEXT_ID, 'text', online(modelsDir)), 'model_download_failed');
    expect(err.message).toContain('onnx/model.onnx');
    expect(await readdir(modelsDir)).toEqual([]);
  });

  it('fails with model_download_failed when a required file answers 404 and leaves nothing behind', async () => {
    faults = { apiMissing: true, missingFile: 'tokenizer_config.json' };
    const modelsDir = await freshModelsDir();
    const err = await expectModelError(resolveModel(TEXT_ID, 'text', online(modelsDir)), 'model_download_failed');
    expect(err.message).toContain('tokenizer_config.json');
    expect(err.message).toContain('404');
    expect(await readdir(modelsDir)).toEqual([]);
  });

  it('fails when the whole model is unknown to the hub', async () => {
    faults = { modelMissing: true };
    const modelsDir = await freshModelsDir();
    await expectModelError(resolveModel(IMAGE_ID, 'image', online(modelsDir)), 'model_download_failed');
    expect(await readdir(modelsDir)).toEqual([]);
  });

  it('fails on a sha256 mismatch with the API and names expected and actual hashes', async () => {
    faults = { wrongApiShaFile: 'onnx/model.onnx' };
    const modelsDir = await freshModelsDir();
    const err = await expectModelError(resolveModel(TEXT_ID, 'text', online(modelsDir)), 'model_download_failed');
    expect(err.message).toContain('onnx/model.onnx');
    expect(err.message).toContain(WRONG_SHA);
    expect(await readdir(modelsDir)).toEqual([]);
  });

  it('verifies the sha256 of X-Linked-ETag when the hub has no API', async () => {
    faults = { apiMissing: true, wrongEtagFile: 'onnx/vision_model.onnx' };
    const modelsDir = await freshModelsDir();
    const err = await expectModelError(resolveModel(IMAGE_ID, 'image', online(modelsDir)), 'model_download_failed');
    expect(err.message).toContain('sha256 mismatch');
    const actual = sha256(await readFile(path.join(SHARED, IMAGE_ID, 'onnx', 'vision_model.onnx')));
    expect(err.message).toContain(actual);
    expect(await readdir(modelsDir)).toEqual([]);
  });

  it('aborts a download that makes no progress for fetchTimeoutMs', async () => {
    faults = { stallFile: 'onnx/vision_model.onnx' };
    const modelsDir = await freshModelsDir();
    const started = Date.now();
    const err = await expectModelError(
      resolveModel(IMAGE_ID, 'image', online(modelsDir, { fetchTimeoutMs: 1000 })),
      'model_download_failed',
    );
    expect(err.message).toContain('onnx/vision_model.onnx');
    expect(err.message).toContain('1000 ms');
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await readdir(modelsDir)).toEqual([]);
  });

  it('fails clearly when the hub cannot be reached', async () => {
    const modelsDir = await freshModelsDir();
    const err = await expectModelError(
      resolveModel(TEXT_ID, 'text', online(modelsDir, { hubUrl: 'http://127.0.0.1:9' })),
      'model_download_failed',
    );
    expect(err.message).toContain('http://127.0.0.1:9');
    expect(await readdir(modelsDir)).toEqual([]);
  });

  it('removes every folder it created when a download into a models dir that did not exist fails', async () => {
    // As on a first run, where ~/.cache/twinlane/models does not exist yet.
    const home = await freshModelsDir();
    const modelsDir = path.join(home, '.cache', 'twinlane', 'models');
    await expectModelError(
      resolveModel(
        'sentence-transformers/all-MiniLM-L6-v2',
        'text',
        online(modelsDir, { hubUrl: 'http://127.0.0.1:9' }),
      ),
      'model_download_failed',
    );
    expect(await readdir(home)).toEqual([]);
  });

  it('keeps folders that were there before, and a sibling model already installed, after a failed download', async () => {
    const modelsDir = await freshModelsDir();
    await resolveModel(IMAGE_ID, 'image', online(modelsDir));
    faults = { modelMissing: true };
    await expectModelError(resolveModel('twinlane/other-model', 'text', online(modelsDir)), 'model_download_failed');
    expect(await readdir(path.join(modelsDir, 'twinlane'))).toEqual(['clip-vision-standin']);
  });

  it('lets concurrent resolutions of the same model share one installed folder', async () => {
    const modelsDir = await freshModelsDir();
    const [a, b] = await Promise.all([
      resolveModel(IMAGE_ID, 'image', online(modelsDir)),
      resolveModel(IMAGE_ID, 'image', online(modelsDir)),
    ]);
    expect(a).toEqual(b);
    expect(await readdir(path.join(modelsDir, 'twinlane'))).toEqual(['clip-vision-standin']);
    expect(await walk(a.dir)).toEqual([...IMAGE_FILES, 'twinlane-manifest.json'].sort());
  });
});

describe('default progress reporter', () => {
  function fakeStream(isTTY: boolean): { stream: NodeJS.WriteStream; text: () => string } {
    const chunks: string[] = [];
    const stream = { isTTY, write: (s: string) => chunks.push(s) > 0 } as unknown as NodeJS.WriteStream;
    return { stream, text: () => chunks.join('') };
  }

  it('prints one line at the start and one at the end of each file when stderr is not a terminal', () => {
    const { stream, text } = fakeStream(false);
    const report = stderrProgress('org/m', stream);
    report({ file: 'onnx/model.onnx', receivedBytes: 0, totalBytes: 13_500_000, done: false });
    report({ file: 'onnx/model.onnx', receivedBytes: 6_100_000, totalBytes: 13_500_000, done: false });
    report({ file: 'onnx/model.onnx', receivedBytes: 13_500_000, totalBytes: 13_500_000, done: true });
    expect(text().split('\n')).toEqual([
      'twinlane: downloading org/m/onnx/model.onnx (13.5 MB)',
      'twinlane: downloaded org/m/onnx/model.onnx (13.5 MB)',
      '',
    ]);
  });

  it('redraws a single bar line on a terminal and ends it with a newline', () => {
    const { stream, text } = fakeStream(true);
    const report = stderrProgress('org/m', stream);
    report({ file: 'model.onnx', receivedBytes: 0, totalBytes: 13_500_000, done: false });
    report({ file: 'model.onnx', receivedBytes: 13_500_000, totalBytes: 13_500_000, done: true });
    const out = text();
    expect(out).toContain('\r[....................]   0% 0.0/13.5 MB model.onnx');
    expect(out).toContain('\r[####################] 100% 13.5/13.5 MB model.onnx');
    expect(out.endsWith('\n')).toBe(true);
    expect(out.split('\n')).toHaveLength(2);
  });
});
