// Downloads a model folder from a Hugging Face-style hub (`{hub}/{id}/resolve/{revision}/{file}`),
// verifying every file's size and sha256 while it streams, and installs it atomically: files go
// into a temporary sibling folder that is renamed into place only when all of them are verified,
// so a crash or a bad byte never leaves a folder that looks complete but is not.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

export type ModelErrorCode = 'model_missing_offline' | 'model_download_failed' | 'model_invalid';

export class ModelError extends Error {
  readonly code: ModelErrorCode;

  constructor(code: ModelErrorCode, message: string, options?: { readonly cause?: unknown }) {
    super(message, options);
    this.name = 'ModelError';
    this.code = code;
  }
}

export interface DownloadProgress {
  /** Path inside the model folder, e.g. `onnx/model.onnx`. */
  readonly file: string;
  readonly receivedBytes: number;
  readonly totalBytes: number | null;
  readonly done: boolean;
}

export interface DownloadRequest {
  readonly id: string;
  readonly kind: string;
  /** Absolute final folder; it must not exist or be empty. */
  readonly target: string;
  readonly hubUrl: string;
  readonly revision: string;
  readonly required: readonly string[];
  readonly optional: readonly string[];
  readonly progress: (event: DownloadProgress) => void;
  readonly fetchTimeoutMs: number;
  /** Throws when the downloaded folder is unusable; runs before the folder is installed. */
  readonly validate: (dir: string) => Promise<void>;
  /** Whether a folder that another process installed meanwhile can be used instead of ours. */
  readonly isComplete: (dir: string) => Promise<boolean>;
}

interface FileJob {
  readonly path: string;
  readonly required: boolean;
  readonly size: number | null;
  readonly sha256: string | null;
}

interface FileRecord {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
}

const MANIFEST = 'twinlane-manifest.json';
const MAX_REDIRECTS = 10;
const SHA256 = /^[0-9a-f]{64}$/;

const failed = (message: string, cause?: unknown): ModelError =>
  new ModelError('model_download_failed', message, cause === undefined ? undefined : { cause });

/** Error text including undici's `cause` (e.g. ECONNREFUSED, "other side closed"), which holds the real reason. */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // Without a closing period: the text is embedded in a sentence that ends with its own.
  const cause = err.cause instanceof Error ? `: ${err.cause.message.replace(/\.$/, '')}` : '';
  return `${err.message.replace(/\.$/, '')}${cause}`;
}

/** Aborts a request that has made no progress for `ms`; kicked on every response and chunk. */
class Watchdog {
  readonly controller = new AbortController();
  fired = false;
  readonly #ms: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(ms: number) {
    this.#ms = ms;
    this.kick();
  }

  kick(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.fired = true;
      this.controller.abort();
    }, this.#ms);
  }

  stop(): void {
    clearTimeout(this.#timer);
  }
}

interface HubResponse {
  readonly res: Response;
  readonly linkedSize: number | null;
  readonly linkedEtag: string | null;
}

// Redirects are followed by hand because HF puts X-Linked-Size / X-Linked-ETag (the LFS size and
// sha256) on the 302 that points at its CDN, and fetch's automatic following would hide them.
async function hubFetch(url: string, dog: Watchdog): Promise<HubResponse> {
  let current = url;
  let linkedSize: number | null = null;
  let linkedEtag: string | null = null;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const res = await fetch(current, {
      redirect: 'manual',
      signal: dog.controller.signal,
      // Compressed bodies would make Content-Length describe other bytes than the ones we count.
      headers: { 'accept-encoding': 'identity' },
    });
    dog.kick();
    const size = res.headers.get('x-linked-size');
    if (size !== null && /^\d+$/.test(size.trim())) linkedSize = Number(size.trim());
    const etag = res.headers.get('x-linked-etag');
    if (etag !== null) linkedEtag = etag.trim().replace(/^W\//, '').replace(/"/g, '').toLowerCase();
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location !== null) {
      await res.body?.cancel();
      current = new URL(location, current).href;
      continue;
    }
    return { res, linkedSize, linkedEtag };
  }
  throw failed(`More than ${MAX_REDIRECTS} redirects starting at ${url}.`);
}

/** The hub's file list with sizes and LFS sha256, or null when the hub has no usable API (then a fixed list is tried). */
async function listHubFiles(
  apiUrl: string,
  timeoutMs: number,
): Promise<Map<string, { size: number | null; sha256: string | null }> | null> {
  const dog = new Watchdog(timeoutMs);
  try {
    const { res } = await hubFetch(apiUrl, dog);
    if (!res.ok) {
      await res.body?.cancel();
      return null;
    }
    let body: unknown;
    try {
      body = await res.json();
    } catch {
      return null;
    }
    const siblings = typeof body === 'object' && body !== null ? (body as { siblings?: unknown }).siblings : undefined;
    if (!Array.isArray(siblings)) return null;
    const files = new Map<string, { size: number | null; sha256: string | null }>();
    for (const s of siblings as unknown[]) {
      if (typeof s !== 'object' || s === null) continue;
      const { rfilename, size, lfs } = s as { rfilename?: unknown; size?: unknown; lfs?: unknown };
      if (typeof rfilename !== 'string') continue;
      const l = typeof lfs === 'object' && lfs !== null ? (lfs as { sha256?: unknown; size?: unknown }) : {};
      const n = typeof l.size === 'number' ? l.size : typeof size === 'number' ? size : null;
      const sha = typeof l.sha256 === 'string' && SHA256.test(l.sha256.toLowerCase()) ? l.sha256.toLowerCase() : null;
      files.set(rfilename, { size: n, sha256: sha });
    }
    return files;
  } catch (err) {
    // Unreachable hub: trying file by file would only repeat the same failure less clearly.
    if (dog.fired) throw failed(`Hub API ${apiUrl} sent nothing for ${timeoutMs} ms.`);
    throw failed(
      `Cannot reach the hub at ${apiUrl}: ${describe(err)} (check TWINLANE_HUB_URL, or set TWINLANE_OFFLINE with the model in TWINLANE_MODELS_DIR).`,
      err,
    );
  } finally {
    dog.stop();
  }
}

function planFiles(
  req: DownloadRequest,
  listed: Map<string, { size: number | null; sha256: string | null }> | null,
): FileJob[] {
  const jobs: FileJob[] = [];
  for (const [files, required] of [
    [req.required, true],
    [req.optional, false],
  ] as const) {
    for (const file of files) {
      const meta = listed?.get(file);
      if (listed !== null && meta === undefined) {
        if (required)
          throw failed(
            `The hub's file list for "${req.id}" at revision ${req.revision} has no ${file}, which a ${req.kind} model needs.`,
          );
        continue;
      }
      jobs.push({ path: file, required, size: meta?.size ?? null, sha256: meta?.sha256 ?? null });
    }
  }
  return jobs;
}

async function downloadFile(
  job: FileJob,
  baseUrl: string,
  dir: string,
  req: DownloadRequest,
): Promise<FileRecord | null> {
  const url = `${baseUrl}/${job.path.split('/').map(encodeURIComponent).join('/')}`;
  const dog = new Watchdog(req.fetchTimeoutMs);
  let received = 0;
  try {
    const { res, linkedSize, linkedEtag } = await hubFetch(url, dog);
    if (res.status === 404 && !job.required) {
      await res.body?.cancel();
      return null;
    }
    if (!res.ok || res.body === null) {
      await res.body?.cancel();
      throw failed(`${job.path}: the hub answered HTTP ${res.status} for ${url}.`);
    }

    const sizes: [string, number][] = [];
    if (job.size !== null) sizes.push(['the hub API', job.size]);
    if (linkedSize !== null) sizes.push(['X-Linked-Size', linkedSize]);
    const encoding = res.headers.get('content-encoding');
    const length = res.headers.get('content-length');
    if (length !== null && /^\d+$/.test(length) && (encoding === null || encoding === 'identity'))
      sizes.push(['Content-Length', Number(length)]);
    const expectedSize = sizes[0]?.[1] ?? null;
    for (const [source, n] of sizes) {
      if (n !== expectedSize)
        throw failed(
          `${job.path}: size mismatch, expected ${expectedSize} bytes (${sizes[0]?.[0]}) but ${source} says ${n}.`,
        );
    }
    const etagSha = linkedEtag !== null && SHA256.test(linkedEtag) ? linkedEtag : null;
    if (job.sha256 !== null && etagSha !== null && job.sha256 !== etagSha) {
      throw failed(`${job.path}: sha256 mismatch, the hub API lists ${job.sha256} but X-Linked-ETag says ${etagSha}.`);
    }
    const expectedSha = job.sha256 ?? etagSha;

    const file = path.join(dir, ...job.path.split('/'));
    await mkdir(path.dirname(file), { recursive: true });
    const handle = await open(file, 'wx');
    const hash = createHash('sha256');
    try {
      req.progress({ file: job.path, receivedBytes: 0, totalBytes: expectedSize, done: false });
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        dog.kick();
        received += value.byteLength;
        if (expectedSize !== null && received > expectedSize) {
          await reader.cancel();
          throw failed(`${job.path}: size mismatch, expected ${expectedSize} bytes but the hub sent more.`);
        }
        hash.update(value);
        await handle.write(value);
        req.progress({ file: job.path, receivedBytes: received, totalBytes: expectedSize, done: false });
      }
    } finally {
      await handle.close();
    }
    if (expectedSize !== null && received !== expectedSize) {
      throw failed(`${job.path}: size mismatch, expected ${expectedSize} bytes, received ${received}.`);
    }
    const sha256 = hash.digest('hex');
    if (expectedSha !== null && sha256 !== expectedSha) {
      throw failed(`${job.path}: sha256 mismatch, expected ${expectedSha}, got ${sha256}.`);
    }
    req.progress({ file: job.path, receivedBytes: received, totalBytes: expectedSize, done: true });
    return { path: job.path, size: received, sha256 };
  } catch (err) {
    // Releases the connection of a response we stopped reading (size/hash/disk errors).
    dog.controller.abort();
    if (err instanceof ModelError) throw err;
    if (dog.fired)
      throw failed(`${job.path}: no data from ${url} for ${req.fetchTimeoutMs} ms (after ${received} bytes).`, err);
    throw failed(`${job.path}: download from ${url} failed after ${received} bytes: ${describe(err)}.`, err);
  } finally {
    dog.stop();
  }
}

/**
 * Removes the folders this download created on the way to `dir` (`mkdir -p` reports the first of
 * them), deepest first, as long as they are empty: a failed download leaves the tree as it found it.
 */
async function removeEmptyFolders(dir: string, firstCreated: string | undefined): Promise<void> {
  if (firstCreated === undefined) return;
  for (let folder = dir; folder.startsWith(firstCreated); folder = path.dirname(folder)) {
    try {
      await rmdir(folder);
    } catch {
      return; // not empty (another download is using it) or already gone
    }
    if (folder === firstCreated) return;
  }
}

export async function downloadModel(req: DownloadRequest): Promise<void> {
  const hub = req.hubUrl.replace(/\/+$/, '');
  const idPath = req.id.split('/').map(encodeURIComponent).join('/');
  const revision = encodeURIComponent(req.revision);
  const parent = path.dirname(req.target);
  const tmp = `${req.target}.partial-${process.pid}-${randomBytes(6).toString('hex')}`;
  let created: string | undefined;
  try {
    created = await mkdir(parent, { recursive: true });
    await mkdir(tmp);
  } catch (err) {
    await removeEmptyFolders(parent, created);
    throw failed(
      `Cannot create a download folder in ${parent}: ${describe(err)} (is TWINLANE_MODELS_DIR writable?).`,
      err,
    );
  }
  try {
    const listed = await listHubFiles(
      `${hub}/api/models/${idPath}/revision/${revision}?blobs=true`,
      req.fetchTimeoutMs,
    );
    const records: FileRecord[] = [];
    for (const job of planFiles(req, listed)) {
      const record = await downloadFile(job, `${hub}/${idPath}/resolve/${revision}`, tmp, req);
      if (record !== null) records.push(record);
    }
    const manifest = {
      id: req.id,
      kind: req.kind,
      revision: req.revision,
      hubUrl: hub,
      downloadedAt: new Date().toISOString(),
      files: records,
    };
    await writeFile(path.join(tmp, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    await req.validate(tmp);
    try {
      await rename(tmp, req.target);
    } catch (err) {
      // Another process installed the model while we downloaded: theirs is as good as ours.
      if (!(await req.isComplete(req.target))) throw err;
      await rm(tmp, { recursive: true, force: true });
    }
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    await removeEmptyFolders(parent, created);
    if (err instanceof ModelError) throw err;
    throw failed(`Downloading "${req.id}" into ${req.target} failed: ${describe(err)}.`, err);
  }
}

// ---- default progress reporter -----------------------------------------------------------------

const mb = (bytes: number): string => (bytes / 1e6).toFixed(1);

/** Progress on stderr: one redrawn line per file on a terminal, a start and an end line otherwise (logs). */
export function stderrProgress(
  id: string,
  stream: NodeJS.WriteStream = process.stderr,
): (event: DownloadProgress) => void {
  let lastDraw = 0;
  return (e) => {
    if (stream.isTTY !== true) {
      if (e.done) stream.write(`twinlane: downloaded ${id}/${e.file} (${mb(e.receivedBytes)} MB)\n`);
      else if (e.receivedBytes === 0) {
        stream.write(
          `twinlane: downloading ${id}/${e.file}${e.totalBytes === null ? '' : ` (${mb(e.totalBytes)} MB)`}\n`,
        );
      }
      return;
    }
    const now = Date.now();
    // Redrawing for every 64 KiB chunk would flood a slow terminal; 10 redraws a second look smooth.
    if (!e.done && e.receivedBytes !== 0 && now - lastDraw < 100) return;
    lastDraw = now;
    const total = e.totalBytes;
    const frac = total !== null && total > 0 ? Math.min(1, e.receivedBytes / total) : e.done ? 1 : 0;
    const filled = Math.round(frac * 20);
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(20 - filled)}]`;
    const amount = total === null ? `${mb(e.receivedBytes)} MB` : `${mb(e.receivedBytes)}/${mb(total)} MB`;
    stream.write(
      `\r${bar} ${String(Math.floor(frac * 100)).padStart(3)}% ${amount} ${e.file}\x1b[K${e.done ? '\n' : ''}`,
    );
  };
}
