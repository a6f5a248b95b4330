// Typed readers for JSON request fields. Each failure names the field as OpenAI's `param`, so a
// client learns exactly what to fix.
import { TwinlaneError } from '../src/index.js';

export type JsonObject = Readonly<Record<string, unknown>>;

export function requireObject(body: unknown): JsonObject {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new TwinlaneError('invalid_request', 'The body must be a JSON object.');
  }
  return body as JsonObject;
}

export function wrongType(param: string, expected: string, value: unknown): TwinlaneError {
  const got = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
  return new TwinlaneError('invalid_request', `'${param}' must be ${expected} (got ${got}).`, { param });
}

/** A string or an array of strings; token-id arrays are refused with a clear message. */
export function textInputs(body: JsonObject, param: string): string[] {
  const value = body[param];
  if (value === undefined) throw new TwinlaneError('invalid_request', `'${param}' is required.`, { param });
  if (typeof value === 'string') return [value];
  if (!Array.isArray(value)) throw wrongType(param, 'a string or an array of strings', value);
  return value.map((item: unknown, i) => textItem(item, `${param}[${i}]`));
}

/** One text of a list (`param` names it: `input[3]`). */
export function textItem(item: unknown, param: string): string {
  if (typeof item === 'string') return item;
  if (typeof item === 'number' || Array.isArray(item)) {
    throw new TwinlaneError('invalid_request', `'${param}': token-id inputs are not supported; send text.`, { param });
  }
  throw wrongType(param, 'a string', item);
}

export function optionalBoolean(body: JsonObject, param: string, fallback: boolean): boolean {
  const value = body[param];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'boolean') throw wrongType(param, 'a boolean', value);
  return value;
}

export function optionalString(body: JsonObject, param: string): string | undefined {
  const value = body[param];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw wrongType(param, 'a string', value);
  return value;
}

export function optionalEnum<T extends string>(body: JsonObject, param: string, allowed: readonly T[], fallback: T): T {
  const value = optionalString(body, param);
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new TwinlaneError('invalid_request', `'${param}' must be one of ${allowed.join(', ')} (got '${value}').`, {
      param,
    });
  }
  return value as T;
}

/** Any JSON number is accepted here; range checks belong to the code that knows the limits. */
export function optionalNumber(body: JsonObject, param: string): number | undefined {
  const value = body[param];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number') throw wrongType(param, 'an integer', value);
  return value;
}
