// GET /openapi.json, /docs, /playground and their scripts (/ui/:name). Everything is read and built
// once, when the routes are made, and answered from memory: the pages add nothing to the embedding
// hot path, need no network (Swagger UI comes from the swagger-ui-dist package) and are open, like
// /health: they hold no data, and every call they make goes through the API and its keys.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TwinlaneError } from '../../src/index.js';
import type { Exchange } from '../exchange.js';

interface Asset {
  readonly type: string;
  readonly body: Uint8Array;
}

/** The compiled browser scripts (ui/*.ts): beside this file's dist/ copy, also when it runs from source. */
function uiDir(): string {
  const here = fileURLToPath(import.meta.url);
  const root = here.endsWith('.ts')
    ? path.resolve(path.dirname(here), '../../dist')
    : path.resolve(path.dirname(here), '../..');
  return path.join(root, 'ui');
}

function loadAssets(): Map<string, Asset> {
  const swagger = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
  const js = 'application/javascript; charset=utf-8';
  const files: [string, string, string][] = [
    ['swagger-ui-bundle.js', path.join(swagger, 'swagger-ui-bundle.js'), js],
    ['swagger-ui.css', path.join(swagger, 'swagger-ui.css'), 'text/css; charset=utf-8'],
    ['docs.js', path.join(uiDir(), 'docs.js'), js],
    ['playground.js', path.join(uiDir(), 'playground.js'), js],
  ];
  return new Map(files.map(([name, file, type]) => [name, { type, body: readFileSync(file) }]));
}

const page = (title: string, head: string, body: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>${head}</head><body>${body}</body></html>`;

const DOCS_HTML = page(
  'twinlane API',
  '<link rel="stylesheet" href="/ui/swagger-ui.css">',
  '<div id="swagger-ui"></div><script src="/ui/swagger-ui-bundle.js"></script><script src="/ui/docs.js"></script>',
);

const PLAYGROUND_HTML = page(
  'twinlane playground',
  `<style>
body{font:15px/1.4 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}
textarea{width:100%;font:inherit;box-sizing:border-box}#drop{border:2px dashed #999;padding:1rem;margin:.5rem 0;text-align:center}
#drop.over{background:#eef}table.heat{border-collapse:collapse;margin:1rem 0}table.heat td,table.heat th{border:1px solid #fff;padding:.4rem .6rem;text-align:center;font-variant-numeric:tabular-nums}
table.heat th{background:#f4f4f4;max-width:12rem;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;font-weight:normal}
#error{color:#b00020;white-space:pre-wrap}#calls{font-size:13px;color:#555}label{margin-right:1rem}
</style>`,
  `<h1>twinlane playground</h1>
<p>Type one text per line and/or drop images; each pair's cosine similarity shows as a colour.</p>
<p><label>Model <select id="model"></select></label><label>API key <input id="key" type="password" autocomplete="off" placeholder="when keys are configured"></label></p>
<textarea id="texts" rows="5" placeholder="one text per line"></textarea>
<div id="drop">Drop images here (or <input id="files" type="file" accept="image/*" multiple>)</div>
<p><button id="run">Compare</button> <button id="clear">Clear images</button> <span id="images"></span></p>
<div id="error" role="alert"></div><div id="heat"></div><div id="calls"></div>
<script src="/ui/playground.js"></script>`,
);

export interface Pages {
  openApi(ex: Exchange): void;
  docs(ex: Exchange): void;
  playground(ex: Exchange): void;
  asset(ex: Exchange): void;
}

/** The page routes; `document` is called once, on the first GET /openapi.json. */
export function createPages(document: () => unknown): Pages {
  const assets = loadAssets();
  let json: string | null = null;
  const html = { 'content-type': 'text/html; charset=utf-8' };
  return {
    openApi(ex) {
      json ??= JSON.stringify(document());
      ex.send(200, { 'content-type': 'application/json' }, json);
    },
    docs: (ex) => ex.send(200, html, DOCS_HTML),
    playground: (ex) => ex.send(200, html, PLAYGROUND_HTML),
    asset(ex) {
      const name = ex.url.slice('/ui/'.length);
      const asset = assets.get(name);
      if (!asset) throw new TwinlaneError('not_found', `No page asset ${JSON.stringify(name)}.`);
      ex.send(200, { 'content-type': asset.type, 'cache-control': 'public, max-age=3600' }, asset.body);
    },
  };
}
