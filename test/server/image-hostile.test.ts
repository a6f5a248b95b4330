import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrorCode } from '../../src/errors.js';
import { bombPng, sceneJpeg, svgBytes } from '../fixtures/images.js';
import { startImageHost, type ImageHost } from '../helpers/image-host.js';
import { postJson, startServer, type TestServer } from '../helpers/server.js';

interface Case {
  readonly name: string;
  readonly body: () => Promise<{ body: Buffer | string; type: string }>;
  readonly status: number;
  readonly code: ErrorCode;
}

describe('hostile image input', () => {
  let host: ImageHost;
  let server: TestServer;
  let photo: Buffer;
  let tiff: Buffer;

  const json = (inputs: unknown[]) => async () => ({ body: JSON.stringify({ inputs }), type: 'application/json' });
  const raw =
    (bytes: () => Promise<Buffer> | Buffer, type = 'image/png') =>
    async () => ({ body: await bytes(), type });
  // Built when the case runs: the host's port is only known after beforeAll.
  const url = (path: string) => async () => json([{ url: `${host.base}${path}` }])();

  const CASES: readonly Case[] = [
    { name: 'zero bytes', body: raw(() => Buffer.alloc(0)), status: 422, code: 'empty_input' },
    {
      name: 'text sent as image/png',
      body: raw(() => Buffer.from('this is not an image at all')),
      status: 415,
      code: 'unsupported_image',
    },
    {
      name: 'a truncated JPEG',
      body: raw(() => photo.subarray(0, Math.floor(photo.length / 2)), 'image/jpeg'),
      status: 415,
      code: 'unsupported_image',
    },
    { name: 'a PNG declaring 30000×30000 pixels', body: raw(() => bombPng()), status: 422, code: 'image_too_large' },
    {
      name: 'an SVG in base64',
      body: json([{ b64: svgBytes().toString('base64') }]),
      status: 415,
      code: 'unsupported_image',
    },
    {
      name: 'an SVG as a raw body',
      body: raw(() => svgBytes(), 'image/svg+xml'),
      status: 415,
      code: 'unsupported_media_type',
    },
    {
      name: 'a text data URI',
      body: json(['data:text/plain;base64,aGVsbG8=']),
      status: 415,
      code: 'unsupported_image',
    },
    { name: 'broken base64', body: json([{ b64: 'not*base64!' }]), status: 400, code: 'invalid_request' },
    {
      name: 'an oversize body',
      body: raw(() => Buffer.alloc(3 * 1024 * 1024, 7), 'image/jpeg'),
      status: 413,
      code: 'payload_too_large',
    },
    {
      name: 'an image over the per-image byte limit in a body within the body limit',
      body: raw(() => Buffer.alloc(1536 * 1024, 7), 'image/jpeg'),
      status: 413,
      code: 'payload_too_large',
    },
    { name: 'a TIFF as a raw body', body: raw(() => tiff, 'image/tiff'), status: 415, code: 'unsupported_media_type' },
    {
      name: 'a TIFF in base64',
      body: async () => json([{ b64: tiff.toString('base64') }])(),
      status: 415,
      code: 'unsupported_image',
    },
    {
      name: 'a URL to 127.0.0.1 off the allowlist',
      body: json([{ url: 'http://127.0.0.1:9/x.png' }]),
      status: 422,
      code: 'image_fetch_forbidden',
    },
    {
      name: 'a name resolving to loopback off the allowlist',
      body: async () => ({
        body: JSON.stringify({ inputs: [{ url: `http://localhost:${host.port}/photo.jpg` }] }),
        type: 'application/json',
      }),
      status: 422,
      code: 'image_fetch_forbidden',
    },
    {
      name: 'a URL to 10.0.0.1',
      body: json([{ url: 'http://10.0.0.1/x.png' }]),
      status: 422,
      code: 'image_fetch_forbidden',
    },
    {
      name: 'a URL to the cloud metadata address',
      body: json([{ url: 'http://169.254.169.254/latest/meta-data/' }]),
      status: 422,
      code: 'image_fetch_forbidden',
    },
    {
      name: 'a URL to [::1]',
      body: json([{ url: 'http://[::1]:9/x.png' }]),
      status: 422,
      code: 'image_fetch_forbidden',
    },
    {
      name: 'an ftp URL',
      body: json([{ url: 'ftp://example.com/x.png' }]),
      status: 422,
      code: 'image_fetch_forbidden',
    },
    {
      name: 'a redirect from an allowed host to a forbidden one',
      body: url('/redirect-forbidden'),
      status: 422,
      code: 'image_fetch_forbidden',
    },
    { name: 'a URL that never answers', body: url('/hang'), status: 422, code: 'image_fetch_timeout' },
    { name: 'a URL streaming past the byte cap', body: url('/endless'), status: 422, code: 'image_fetch_failed' },
    { name: 'a URL answering 404', body: url('/missing.png'), status: 422, code: 'image_fetch_failed' },
    { name: 'a URL answering HTML', body: url('/page.html'), status: 422, code: 'image_fetch_failed' },
  ];

  beforeAll(async () => {
    host = await startImageHost();
    photo = await sceneJpeg('stripes');
    tiff = await (await import('sharp')).default(photo).tiff().toBuffer();
    host.put('/photo.jpg', photo);
    server = await startServer({
      TWINLANE_IMAGE_FETCH_ALLOWLIST: `127.0.0.1:${host.port}`,
      TWINLANE_IMAGE_FETCH_TIMEOUT_MS: '1500',
      TWINLANE_MAX_IMAGE_BYTES: String(1024 * 1024),
      TWINLANE_MAX_IMAGE_BODY_BYTES: String(2 * 1024 * 1024),
    });
  });
  afterAll(async () => {
    await server.stop();
    await host.close();
  });

  async function goodText(): Promise<number> {
    return (await postJson(`${server.url}/embed/text`, { inputs: 'text keeps flowing' })).status;
  }
  async function goodImage(): Promise<number> {
    return (
      await fetch(`${server.url}/embed/image`, {
        method: 'POST',
        headers: { 'content-type': 'image/jpeg' },
        body: photo,
      })
    ).status;
  }

  it.each(CASES.map((c) => [c.name, c] as const))(
    'answers %s with its exact status and code, and keeps serving',
    async (_name, c) => {
      const { body, type } = await c.body();
      const during = [goodText(), goodImage()];
      const started = performance.now();
      const res = await fetch(`${server.url}/embed/image`, { method: 'POST', headers: { 'content-type': type }, body });
      const elapsed = performance.now() - started;
      expect(res.status).toBe(c.status);
      const answer = (await res.json()) as { error: { code: string; message: string } };
      expect(answer.error.code).toBe(c.code);
      // "Quickly": bounded by the configured fetch timeout, never by some default minutes away.
      expect(elapsed).toBeLessThan(10_000);
      expect(await Promise.all(during)).toEqual([200, 200]);
    },
  );

  it('keeps serving text and images while every hostile input arrives at once', async () => {
    const bodies = await Promise.all(CASES.map((c) => c.body()));
    const hostile = bodies.map(({ body, type }) =>
      fetch(`${server.url}/embed/image`, { method: 'POST', headers: { 'content-type': type }, body }).then(
        (r) => r.status,
        () => 0,
      ),
    );
    const good = [goodText(), goodImage(), goodText(), goodImage()];
    const statuses = await Promise.all(hostile);
    expect(Object.fromEntries(CASES.map((c, i) => [c.name, statuses[i]]))).toEqual(
      Object.fromEntries(CASES.map((c) => [c.name, c.status])),
    );
    expect(await Promise.all(good)).toEqual([200, 200, 200, 200]);
    expect(server.process.exitCode).toBeNull();
  });
});
