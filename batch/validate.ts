// Up-front validation of a batch input file, as OpenAI does it in `validating`: every line must be a
// JSON object `{"custom_id", "method": "POST", "url": <the batch's endpoint>, "body": {…}}` with a
// unique custom_id, a model this server serves and an `input` within the per-request limits. One bad
// line fails the whole batch with per-line errors; nothing is embedded half-way.

export interface BatchLine {
  /** 1-based line number in the input file. */
  readonly line: number;
  readonly customId: string;
  readonly body: Readonly<Record<string, unknown>>;
}

/** One entry of OpenAI's batch `errors.data`. */
export interface LineError {
  readonly code: string;
  readonly message: string;
  readonly param: string | null;
  readonly line: number | null;
}

export interface ValidationLimits {
  readonly maxInputs: number;
  readonly maxLineBytes: number;
  readonly maxLines: number;
  readonly knownModel: (id: string | undefined) => boolean;
}

/** Errors past this many are summarised in one: a broken file need not list every line. */
const MAX_REPORTED = 100;

function checkLine(text: string, line: number, endpoint: string, limits: ValidationLimits): BatchLine | LineError {
  const error = (code: string, message: string, param: string | null = null): LineError => ({
    code,
    message,
    param,
    line,
  });
  if (Buffer.byteLength(text) > limits.maxLineBytes)
    return error('line_too_large', `Line ${line} has more than ${limits.maxLineBytes} bytes.`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return error('invalid_json_line', `Line ${line} is not valid JSON.`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return error('invalid_json_line', `Line ${line} is not a JSON object.`);
  const { custom_id: customId, method, url, body } = value as Record<string, unknown>;
  if (typeof customId !== 'string' || customId === '')
    return error('missing_required_parameter', `Line ${line} needs a string custom_id.`, 'custom_id');
  if (method !== 'POST') return error('invalid_method', `Line ${line}: method must be POST.`, 'method');
  if (url !== endpoint)
    return error(
      'mismatched_endpoint',
      `Line ${line}: url ${JSON.stringify(url)} is not the batch's endpoint ${endpoint}.`,
      'url',
    );
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return error('missing_required_parameter', `Line ${line} needs a body object.`, 'body');
  const request = body as Record<string, unknown>;
  if (request['model'] !== undefined && typeof request['model'] !== 'string')
    return error('invalid_request', `Line ${line}: body.model must be a string.`, 'body.model');
  if (!limits.knownModel(request['model'] as string | undefined))
    return error(
      'model_not_found',
      `Line ${line}: model ${JSON.stringify(request['model'])} is not served here.`,
      'body.model',
    );
  const input = request['input'];
  if (input === undefined) return error('missing_required_parameter', `Line ${line} needs body.input.`, 'body.input');
  if (Array.isArray(input) && input.length > limits.maxInputs)
    return error(
      'too_many_inputs',
      `Line ${line} has ${input.length} inputs; the limit is ${limits.maxInputs}.`,
      'body.input',
    );
  return { line, customId, body: request };
}

/** The lines of `content`, or the errors that fail the batch. */
export function validateBatchFile(
  content: Buffer,
  endpoint: string,
  limits: ValidationLimits,
): { lines: BatchLine[] } | { errors: LineError[] } {
  const texts = content.toString('utf8').split('\n');
  if (texts.at(-1) === '') texts.pop();
  if (texts.length === 0)
    return { errors: [{ code: 'empty_file', message: 'The input file has no lines.', param: null, line: null }] };
  if (texts.length > limits.maxLines)
    return {
      errors: [
        {
          code: 'too_many_lines',
          message: `The input file has ${texts.length} lines; the limit is ${limits.maxLines}.`,
          param: null,
          line: null,
        },
      ],
    };
  const lines: BatchLine[] = [];
  const errors: LineError[] = [];
  const seen = new Set<string>();
  texts.forEach((text, i) => {
    const checked = checkLine(text.replace(/\r$/, ''), i + 1, endpoint, limits);
    if ('code' in checked) errors.push(checked);
    else if (seen.has(checked.customId))
      errors.push({
        code: 'duplicate_custom_id',
        message: `Line ${i + 1} repeats custom_id ${JSON.stringify(checked.customId)}.`,
        param: 'custom_id',
        line: i + 1,
      });
    else {
      seen.add(checked.customId);
      lines.push(checked);
    }
  });
  if (errors.length === 0) return { lines };
  if (errors.length <= MAX_REPORTED) return { errors };
  return {
    errors: [
      ...errors.slice(0, MAX_REPORTED),
      {
        code: 'too_many_errors',
        message: `${errors.length - MAX_REPORTED} more lines have errors.`,
        param: null,
        line: null,
      },
    ],
  };
}
