// The common alternative a TypeScript user would pick, as a benchmark baseline (never a dependency of
// the product): @huggingface/transformers' feature-extraction pipeline behind a plain node:http
// server, one pipeline call per request, no batching across requests, no cache, ONNX Runtime's
// default threads. It answers POST /v1/embeddings like twinlane (`input` a string, `encoding_format`
// base64), so the same load runs against both. Run as a child process; logs "listening on …".
// Env: TJS_MODELS_DIR (a models folder), TJS_MODEL (a model id below it), TJS_DTYPE (fp32 | q8).
import http from 'node:http';
import { env, pipeline } from '@huggingface/transformers';

const modelsDir = process.env['TJS_MODELS_DIR'] ?? '../shared/models';
const model = process.env['TJS_MODEL'] ?? 'twinlane/minilm-l6-standin';
const dtype = (process.env['TJS_DTYPE'] ?? 'fp32') as 'fp32' | 'q8';
env.localModelPath = modelsDir.endsWith('/') ? modelsDir : `${modelsDir}/`;
env.allowRemoteModels = false;

const extractor = await pipeline('feature-extraction', model, { dtype });

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function reply(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
}

const server = http.createServer((req, res) => {
  void (async () => {
    try {
      const body = JSON.parse(await readBody(req)) as { input: string | string[] };
      const inputs = Array.isArray(body.input) ? body.input : [body.input];
      const output = await extractor(inputs, { pooling: 'mean', normalize: true });
      const dims = output.dims[1]!;
      const data = inputs.map((_, i) => {
        const vector = (output.data as Float32Array).subarray(i * dims, (i + 1) * dims);
        return {
          object: 'embedding',
          index: i,
          embedding: Buffer.from(vector.buffer, vector.byteOffset, dims * 4).toString('base64'),
        };
      });
      reply(res, 200, JSON.stringify({ object: 'list', data, model }));
    } catch (error) {
      reply(res, 400, JSON.stringify({ error: { message: (error as Error).message } }));
    }
  })();
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env['TJS_PORT'] ?? '0'), '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`listening on http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}\n`);
});
process.on('SIGTERM', () => process.exit(0));
