// /docs and /playground in real headless Chromium (Debian's, driven by playwright-core) against a
// real server with an API key configured: Swagger UI lists the routes and its "try it" call to
// /v1/embeddings, authorised with the key, answers 200; the playground draws a 3×3 heat map for
// three texts whose related pair is its warmest off-diagonal cell, a 2×2 map for two dropped
// images, and shows a wrong key's error in the API's words. With UPDATE_SCREENSHOTS=1 it writes the
// README's screenshots (docs/*.png).
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';

// The few browser objects the page callbacks touch, declared here: the tests compile without the DOM
// library (its globals would clash with Node's).
declare const document: { getElementById(id: string): { textContent: string | null } | null };
declare const getComputedStyle: (element: unknown) => { backgroundColor: string };
declare class DataTransfer {
  readonly items: { add(file: File): void };
}

const KEY = 'sk-playground-test';
const SCREENSHOTS = process.env['UPDATE_SCREENSHOTS'] === '1';

let server: TestServer;
let browser: Browser;

beforeAll(async () => {
  server = await startServer({ TWINLANE_API_KEYS: KEY });
  browser = await chromium.launch({
    executablePath: process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

/** Runs `use` on a fresh page, closed afterwards whatever happens. */
async function withPage(use: (page: Page) => Promise<void>): Promise<void> {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  // The pages must work offline: any request that leaves the server fails the test.
  await page.route(
    (url) => !url.href.startsWith(server.url),
    (route) => {
      throw new Error(`the page asked for ${route.request().url()}`);
    },
  );
  try {
    await use(page);
  } finally {
    await page.close();
  }
}

/** /playground with the key entered, once it has listed the models. */
async function openPlayground(page: Page): Promise<void> {
  await page.goto(`${server.url}/playground`);
  await page.fill('#key', KEY);
  await page.dispatchEvent('#key', 'change');
  await page.waitForSelector('#model option:nth-child(2)', { state: 'attached' });
}

/** The heat map's cells as [row, col, cosine, red − blue of its colour]. */
async function cells(page: Page): Promise<[number, number, number, number][]> {
  return page.$$eval('table.heat td', (tds) =>
    tds.map((td) => {
      const el = td as unknown as { dataset: Record<string, string | undefined> };
      const [r, , b] = (getComputedStyle(el).backgroundColor.match(/\d+/g) ?? []).map(Number);
      return [Number(el.dataset['row']), Number(el.dataset['col']), Number(el.dataset['cos']), r! - b!] as [
        number,
        number,
        number,
        number,
      ];
    }),
  );
}

describe('/docs', () => {
  it('renders the route list, and "try it" on /v1/embeddings with the key answers 200', async () => {
    await withPage(async (page) => {
      await page.goto(`${server.url}/docs`);
      await page.waitForSelector('.opblock-summary-path');
      const paths = await page.$$eval('.opblock-summary-path', (els) => els.map((e) => e.textContent?.trim()));
      expect(paths).toEqual(expect.arrayContaining(['/v1/embeddings', '/embed/text', '/v1/batches', '/playground']));
      if (SCREENSHOTS) await page.screenshot({ path: path.resolve('docs/docs.png') });
      await page.click('button.authorize');
      await page.fill('.auth-container input', KEY);
      await page.click('.auth-btn-wrapper button.authorize');
      await page.click('button.btn-done');
      await page.click('#operations-Embeddings-post_v1_embeddings .opblock-summary');
      const op = page.locator('#operations-Embeddings-post_v1_embeddings');
      const tryOut = op.locator('button.try-out__btn');
      if ((await tryOut.textContent())?.includes('Try it out')) await tryOut.click();
      await op.locator('button.execute').click();
      const status = op.locator('.live-responses-table tr.response .response-col_status').first();
      await status.waitFor();
      expect((await status.textContent())?.trim()).toBe('200');
      if (SCREENSHOTS) {
        await status.scrollIntoViewIfNeeded();
        await page.screenshot({ path: path.resolve('docs/docs-try-it.png') });
      }
    });
  }, 60_000);
});

describe('/playground', () => {
  it('draws a 3×3 heat map whose related pair is the warmest off-diagonal cell', async () => {
    await withPage(async (page) => {
      await openPlayground(page);
      await page.fill(
        '#texts',
        'A man is playing a guitar.\nSomeone plays the guitar.\nThe stock market fell sharply today.',
      );
      await page.click('#run');
      await page.waitForSelector('table.heat td');
      const grid = await cells(page);
      expect(grid).toHaveLength(9);
      for (const [row, col, cos] of grid) if (row === col) expect(cos).toBeCloseTo(1, 4);
      const off = grid.filter(([row, col]) => row !== col);
      const byCos = [...off].sort((a, b) => b[2] - a[2])[0]!;
      const byColour = [...off].sort((a, b) => b[3] - a[3])[0]!;
      expect([byCos[0], byCos[1]].sort()).toEqual([0, 1]);
      expect([byColour[0], byColour[1]].sort()).toEqual([0, 1]);
      expect(await page.textContent('#calls')).toMatch(/3 inputs, 384 dims, cache hits \d+/);
      if (SCREENSHOTS) await page.screenshot({ path: path.resolve('docs/playground.png'), fullPage: true });
    });
  }, 60_000);

  it('draws a 2×2 heat map for two dropped images', async () => {
    await withPage(async (page) => {
      await openPlayground(page);
      const images = await Promise.all(
        ['#d33', '#35d'].map(async (colour) =>
          (
            await sharp({ create: { width: 64, height: 64, channels: 3, background: colour } })
              .png()
              .toBuffer()
          ).toString('base64'),
        ),
      );
      // A real drop event carrying the two files, as a person dragging them from their desktop makes.
      const dataTransfer = await page.evaluateHandle((pngs) => {
        const dt = new DataTransfer();
        pngs.forEach((b64, i) =>
          dt.items.add(
            new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], `image-${i}.png`, { type: 'image/png' }),
          ),
        );
        return dt;
      }, images);
      await page.dispatchEvent('#drop', 'drop', { dataTransfer });
      await page.waitForFunction(() => document.getElementById('images')?.textContent?.startsWith('2 image'));
      await page.click('#run');
      await page.waitForSelector('table.heat td');
      expect(await cells(page)).toHaveLength(4);
      expect(await page.textContent('#calls')).toMatch(/2 inputs, \d+ dims/);
    });
  }, 60_000);

  it("shows a wrong key's error in the API's words", async () => {
    await withPage(async (page) => {
      await page.goto(`${server.url}/playground`);
      await page.fill('#key', 'sk-wrong');
      await page.dispatchEvent('#key', 'change');
      await page.waitForFunction(() => (document.getElementById('error')?.textContent ?? '') !== '');
      expect(await page.textContent('#error')).toMatch(/^invalid_api_key \(401\): /);
    });
  }, 60_000);
});
