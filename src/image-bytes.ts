// The image path before the lane: an input's bytes, given or fetched (SSRF-guarded, src/image-fetch.ts),
// held to the image byte limit. URLs are keyed by the bytes they answer with, so this runs before the cache.
import { TwinlaneError } from './errors.js';

/** An image as a request gives it: its bytes, or a URL to fetch them from. */
export type ImageInput = { readonly bytes: Buffer } | { readonly url: string };

/** Fetches image URLs; src/image-fetch.ts provides it. */
export interface ImageSource {
  fetch(url: string): Promise<{ readonly bytes: Buffer }>;
}

export class ImageBytes {
  readonly #source: ImageSource;
  readonly #maxBytes: number;

  constructor(source: ImageSource, maxBytes: number) {
    this.#source = source;
    this.#maxBytes = maxBytes;
  }

  /** The input's bytes; a failed fetch, an empty or an oversized image is refused naming `param`. */
  async of(input: ImageInput, param: string): Promise<Buffer> {
    const bytes = 'bytes' in input ? input.bytes : await this.#fetch(input.url, param);
    const refusal = this.refusal(bytes, param);
    if (refusal) throw refusal;
    return bytes;
  }

  /** Why these bytes cannot be embedded (none, or over the limit), or null. */
  refusal(bytes: Buffer, param: string): TwinlaneError | null {
    if (bytes.length === 0) return new TwinlaneError('empty_input', `${param} has no bytes.`, { param });
    if (bytes.length > this.#maxBytes)
      return new TwinlaneError(
        'payload_too_large',
        `${param} has ${bytes.length} bytes; the limit is ${this.#maxBytes}.`,
        { param },
      );
    return null;
  }

  async #fetch(url: string, param: string): Promise<Buffer> {
    try {
      return (await this.#source.fetch(url)).bytes;
    } catch (error) {
      throw error instanceof TwinlaneError
        ? new TwinlaneError(error.code, `${param}: ${error.message}`, { param, cause: error })
        : error;
    }
  }
}
