// The files of OpenAI's Files API (`purpose: batch` inputs, `batch_output` results) in a directory:
// `<dir>/files/<id>.json` holds the file object, `<id>.data` its bytes. Writes go to a temporary
// name and are renamed into place, so a reader never sees half a file. Several instances share
// batches by sharing this directory (a network file system mounted at the same path everywhere).
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

export type FilePurpose = 'batch' | 'batch_output';

/** OpenAI's file object. */
export interface FileObject {
  readonly id: string;
  readonly object: 'file';
  readonly bytes: number;
  readonly created_at: number;
  readonly expires_at: number | null;
  readonly filename: string;
  readonly purpose: FilePurpose;
  readonly status: 'processed';
}

export interface FileStoreOptions {
  readonly dir: string;
  /** Seconds a file lives; 0: until deleted. */
  readonly ttlSeconds: number;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Writes `data` to `file` through a temporary name in the same directory. */
export async function writeAtomically(file: string, data: string | Uint8Array): Promise<void> {
  const temporary = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(temporary, data);
  await rename(temporary, file);
}

export class FileStore {
  readonly #dir: string;
  readonly #ttlSeconds: number;

  constructor(options: FileStoreOptions) {
    this.#dir = path.join(options.dir, 'files');
    this.#ttlSeconds = options.ttlSeconds;
  }

  async #ready(): Promise<void> {
    await mkdir(this.#dir, { recursive: true });
  }

  #paths(id: string): { meta: string; data: string } {
    // Ids are ours (`file-` and hex); anything else names no file and never reaches the file system.
    if (!/^file-[0-9a-f]{24}$/.test(id)) return { meta: '', data: '' };
    return { meta: path.join(this.#dir, `${id}.json`), data: path.join(this.#dir, `${id}.data`) };
  }

  async create(purpose: FilePurpose, filename: string, bytes: Uint8Array): Promise<FileObject> {
    await this.#ready();
    const created = nowSeconds();
    const file: FileObject = {
      id: `file-${randomBytes(12).toString('hex')}`,
      object: 'file',
      bytes: bytes.length,
      created_at: created,
      expires_at: this.#ttlSeconds > 0 ? created + this.#ttlSeconds : null,
      filename,
      purpose,
      status: 'processed',
    };
    const paths = this.#paths(file.id);
    await writeAtomically(paths.data, bytes);
    await writeAtomically(paths.meta, JSON.stringify(file));
    return file;
  }

  /** The file object, or null when there is none (or it expired, which deletes it). */
  async get(id: string): Promise<FileObject | null> {
    const { meta } = this.#paths(id);
    if (meta === '') return null;
    let file: FileObject;
    try {
      file = JSON.parse(await readFile(meta, 'utf8')) as FileObject;
    } catch {
      return null;
    }
    if (file.expires_at !== null && file.expires_at <= nowSeconds()) {
      await this.delete(id);
      return null;
    }
    return file;
  }

  async content(id: string): Promise<Buffer | null> {
    if (!(await this.get(id))) return null;
    return readFile(this.#paths(id).data).catch(() => null);
  }

  async delete(id: string): Promise<boolean> {
    const { meta, data } = this.#paths(id);
    if (meta === '') return false;
    const existed = await readFile(meta).then(
      () => true,
      () => false,
    );
    await Promise.all([rm(meta, { force: true }), rm(data, { force: true })]);
    return existed;
  }

  /** Newest first. */
  async list(): Promise<FileObject[]> {
    await this.#ready();
    const names = (await readdir(this.#dir)).filter((n) => n.endsWith('.json'));
    const files = await Promise.all(names.map((n) => this.get(n.slice(0, -'.json'.length))));
    return files.filter((f): f is FileObject => f !== null).sort((a, b) => b.created_at - a.created_at);
  }
}
