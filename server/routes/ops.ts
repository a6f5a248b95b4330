// Operator routes: liveness, readiness, model info, OpenAI's model list, Prometheus metrics.
import path from 'node:path';
import type { Metrics, Orchestrator, ServedModel } from '../../src/index.js';
import type { Exchange } from '../exchange.js';
import { replyJson } from '../reply.js';

/** What /info tells clients about the limits they will meet, per lane. */
export interface InfoLimits {
  readonly maxInputs: number;
  readonly maxChars: number;
  readonly maxBodyBytes: number;
  readonly text: { readonly maxBatchItems: number; readonly maxBatchTokens: number };
  readonly image: {
    readonly maxBatchItems: number;
    readonly maxBodyBytes: number;
    readonly maxImageBytes: number;
    readonly maxImagePixels: number;
  } | null;
}

export interface OpsRouteOptions {
  readonly orchestrator: Orchestrator;
  readonly metrics: Metrics;
  readonly version: string;
  readonly limits: InfoLimits;
  readonly startedAt: number;
  /** True while the server drains: /ready answers 503 so balancers stop sending it work. */
  readonly draining: () => boolean;
}

export function health(ex: Exchange): void {
  replyJson(ex, 200, { status: 'ok' });
}

export function ready(ex: Exchange, options: OpsRouteOptions): void {
  const readiness = options.orchestrator.readiness();
  const status = options.draining() ? 'draining' : readiness.ready ? 'ready' : 'not_ready';
  replyJson(ex, status === 'ready' ? 200 : 503, { status, ...readiness, ready: status === 'ready' });
}

export function info(ex: Exchange, options: OpsRouteOptions): void {
  const { limits } = options;
  replyJson(ex, 200, {
    name: 'twinlane',
    version: options.version,
    models: options.orchestrator.registry.list().map(modelInfo),
    limits: {
      max_inputs: limits.maxInputs,
      max_chars: limits.maxChars,
      max_body_bytes: limits.maxBodyBytes,
      text: { max_batch_items: limits.text.maxBatchItems, max_batch_tokens: limits.text.maxBatchTokens },
      ...(limits.image
        ? {
            image: {
              max_batch_items: limits.image.maxBatchItems,
              max_body_bytes: limits.image.maxBodyBytes,
              max_image_bytes: limits.image.maxImageBytes,
              max_image_pixels: limits.image.maxImagePixels,
            },
          }
        : {}),
    },
  });
}

/**
 * A served model as /info lists it: its lanes (the first is where plain strings go), dims, the text
 * tower's token limit, and each tower's weights (variant and file) and cache key segment.
 */
function modelInfo(model: ServedModel): Record<string, unknown> {
  const lanes = [model.text ? 'text' : null, model.image ? 'image' : null].filter((l) => l !== null);
  return {
    id: model.id,
    lane: lanes[0],
    lanes,
    dims: model.dims,
    max_tokens: model.text?.maxTokens ?? null,
    towers: {
      ...(model.text
        ? {
            text: {
              dtype: model.text.dtype,
              file: path.relative(model.text.dir, model.text.onnxPath),
              pooling: model.text.pooling,
              max_tokens: model.text.maxTokens,
              cache_id: model.text.cacheId,
            },
          }
        : {}),
      ...(model.image
        ? {
            image: {
              dtype: model.image.dtype,
              file: path.relative(model.image.dir, model.image.onnxPath),
              cache_id: model.image.cacheId,
            },
          }
        : {}),
    },
  };
}

export function models(ex: Exchange, options: OpsRouteOptions): void {
  const created = Math.floor(options.startedAt / 1000);
  replyJson(ex, 200, {
    object: 'list',
    data: options.orchestrator.registry
      .list()
      .map((m) => ({ id: m.id, object: 'model', created, owned_by: 'twinlane' })),
  });
}

export async function metrics(ex: Exchange, options: OpsRouteOptions): Promise<void> {
  const { contentType, body } = await options.metrics.render();
  ex.send(200, { 'content-type': contentType }, body);
}
