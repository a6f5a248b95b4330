// Turns the image inputs a client may send into bytes or URLs for the orchestrator: `{"url"}`,
// `{"b64"}`, `data:image/…;base64,…` URIs, plain http(s) URLs, or a raw body. Base64 is checked
// strictly, since Node's decoder silently skips characters it does not know.
import { TwinlaneError, type ImageInput } from '../src/index.js';

/** Raw bodies the image route accepts, by Content-Type. */
export const RAW_IMAGE_TYPES: ReadonlySet<string> = new Set([
  'image/jpeg',
  'image/png',
  'image/webp',
  'image/gif',
  'image/avif',
]);

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Bytes that `text` holds if every character of it is base64 (padding counted). */
function base64Length(text: string): number {
  const padding = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  return Math.floor((text.length * 3) / 4) - padding;
}

function base64Bytes(text: string, param: string): Buffer {
  // Fast path: Node's decoder skips characters it does not know, so a clean string is exactly one
  // whose decoded length is what its length promises. Only other strings pay for the full check.
  const bytes = Buffer.from(text, 'base64');
  if (text.length % 4 === 0 && bytes.length === base64Length(text)) return bytes;
  const compact = text.replace(/\s+/g, '');
  if (compact.length % 4 === 1 || !BASE64.test(compact))
    throw new TwinlaneError('invalid_request', `${param} is not valid base64.`, { param });
  return Buffer.from(compact, 'base64');
}

function dataUri(uri: string, param: string): Buffer {
  const comma = uri.indexOf(',');
  const meta = comma === -1 ? '' : uri.slice(5, comma).toLowerCase();
  if (comma === -1 || !meta.endsWith(';base64'))
    throw new TwinlaneError('invalid_request', `${param} must be a base64 data URI (data:image/…;base64,…).`, {
      param,
    });
  if (!meta.startsWith('image/'))
    throw new TwinlaneError(
      'unsupported_image',
      `${param} is a data URI of type ${meta.slice(0, -7) || 'none'}, not an image.`,
      { param },
    );
  return base64Bytes(uri.slice(comma + 1), param);
}

/** One input: a string (data URI or URL) or an object with exactly one of `url` / `b64`. */
export function imageInput(value: unknown, param: string): ImageInput {
  if (typeof value === 'string') {
    if (value.startsWith('data:')) return { bytes: dataUri(value, param) };
    // Any other scheme is left to the fetcher's guard, which names it in a precise 422.
    if (/^[a-z][a-z0-9+.-]*:/i.test(value)) return { url: value };
    throw new TwinlaneError('invalid_request', `${param} must be a URL, a data URI, {"url": …} or {"b64": …}.`, {
      param,
    });
  }
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const { url, b64 } = value as { url?: unknown; b64?: unknown };
    if (typeof url === 'string' && b64 === undefined) return { url };
    if (typeof b64 === 'string' && url === undefined)
      return { bytes: b64.startsWith('data:') ? dataUri(b64, `${param}.b64`) : base64Bytes(b64, `${param}.b64`) };
  }
  throw new TwinlaneError('invalid_request', `${param} must be a URL, a data URI, {"url": …} or {"b64": …}.`, {
    param,
  });
}

export function imageInputs(body: Readonly<Record<string, unknown>>, param: string): ImageInput[] {
  const value = body[param];
  if (value === undefined) throw new TwinlaneError('invalid_request', `'${param}' is required.`, { param });
  const list = Array.isArray(value) ? value : [value];
  return list.map((item: unknown, i) => imageInput(item, `${param}[${i}]`));
}
