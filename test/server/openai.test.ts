import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cosine, norm, startServer, TEXT_MODEL, type TestServer } from '../helpers/server.js';

describe('the OpenAI-compatible route with the official openai client', () => {
  let server: TestServer;
  let client: OpenAI;

  beforeAll(async () => {
    server = await startServer();
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await server.stop();
  });

  it('returns 384-dim unit vectors with the client default (base64)', async () => {
    const res = await client.embeddings.create({
      model: TEXT_MODEL,
      input: ['A man is playing a guitar.', 'The stock market fell sharply today.'],
    });
    expect(res.object).toBe('list');
    expect(res.model).toBe(TEXT_MODEL);
    expect(res.data.map((d) => d.index)).toEqual([0, 1]);
    for (const item of res.data) {
      expect(item.embedding).toHaveLength(384);
      expect(norm(item.embedding)).toBeCloseTo(1, 5);
    }
    expect(res.usage.prompt_tokens).toBeGreaterThan(4);
    expect(res.usage.total_tokens).toBe(res.usage.prompt_tokens);
  });

  it('returns the same vectors as float JSON as it does as base64', async () => {
    const input = 'Heavy rain caused flooding in the city.';
    const b64 = await client.embeddings.create({ model: TEXT_MODEL, input });
    const float = await client.embeddings.create({ model: TEXT_MODEL, input, encoding_format: 'float' });
    expect(float.data[0]!.embedding).toHaveLength(384);
    expect(norm(float.data[0]!.embedding)).toBeCloseTo(1, 5);
    expect(float.data[0]!.embedding).toEqual(b64.data[0]!.embedding);
  });

  it('cuts vectors to the requested dimensions and re-normalises them', async () => {
    const full = await client.embeddings.create({
      model: TEXT_MODEL,
      input: 'The cat sat on the mat.',
      encoding_format: 'float',
    });
    const cut = await client.embeddings.create({
      model: TEXT_MODEL,
      input: 'The cat sat on the mat.',
      dimensions: 128,
    });
    const vector = cut.data[0]!.embedding;
    expect(vector).toHaveLength(128);
    expect(norm(vector)).toBeCloseTo(1, 5);
    expect(cosine(vector, full.data[0]!.embedding.slice(0, 128))).toBeCloseTo(1, 5);
  });

  it('scores a paraphrase pair above an unrelated pair', async () => {
    const res = await client.embeddings.create({
      model: TEXT_MODEL,
      input: ['A man is playing a guitar.', 'Someone is strumming a guitar.', 'The stock market fell sharply today.'],
    });
    const [anchor, paraphrase, unrelated] = res.data.map((d) => d.embedding) as [number[], number[], number[]];
    expect(cosine(anchor, paraphrase)).toBeGreaterThan(cosine(anchor, unrelated) + 0.2);
  });

  it('answers the /embeddings alias and lists the model', async () => {
    const alias = new OpenAI({ baseURL: server.url, apiKey: 'unused', maxRetries: 0 });
    const res = await alias.embeddings.create({ model: TEXT_MODEL, input: 'hello' });
    expect(res.data[0]!.embedding).toHaveLength(384);
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toContain(TEXT_MODEL);
  });

  it("surfaces an unknown model as the client's NotFoundError with code model_not_found", async () => {
    const error = await client.embeddings.create({ model: 'nope/nothing', input: 'x' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect((error as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
  });
});
