// `npm run bench:e2e`: one run, both lanes, written to bench/results/e2e.md:
//   text (bench/lib/e2e-text.ts): (a) raw ONNX ceiling, (b) server with unique texts, (c) with cached
//   texts, (d) bare uWebSockets.js echo;
//   image (bench/lib/e2e-image.ts): (e) raw ceiling with decode + preprocess, (f) server with distinct
//   JPEGs, (g) sharp preprocessing alone.
// Phases run strictly one after another; servers are child processes so that the load generator
// (this process) and the measured server are scheduled like separate programs.
// BENCH_ONLY=text|image runs one half while working on the bench; it prints the report but does not
// write e2e.md, whose text and image figures must come from one run.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { killChildren, ROOT } from './lib/children.js';
import { DISTURBED_CORES } from './lib/cpu.js';
import { machineLines, quietSample } from './lib/machine.js';
import { imageBench } from './lib/e2e-image.js';
import { TEXT_MODEL, textBench } from './lib/e2e-text.js';
import { progress } from './lib/phase.js';

const HALVES = { text: textBench, image: imageBench } as const;
type Half = keyof typeof HALVES;

function chosenHalves(): readonly Half[] {
  const only = process.env['BENCH_ONLY'];
  if (only === undefined || only === '') return ['text', 'image'];
  if (only === 'text' || only === 'image') return [only];
  throw new Error(`BENCH_ONLY must be text or image (got "${only}")`);
}

async function main(): Promise<void> {
  const halves = chosenHalves();
  const modelsDir = path.resolve(ROOT, process.env['TWINLANE_MODELS_DIR'] ?? '../shared/models');
  const baseEnv: NodeJS.ProcessEnv = {
    ...process.env,
    TWINLANE_PORT: '0',
    TWINLANE_HOST: '127.0.0.1',
    TWINLANE_MODELS_DIR: modelsDir,
    // The image server runs the text lane too, as in production.
    TWINLANE_TEXT_MODEL: TEXT_MODEL,
    TWINLANE_OFFLINE: 'true',
  };
  const started = Date.now();
  const quiet = await quietSample(progress);

  const sections: string[] = [];
  for (const half of halves) sections.push(...(await HALVES[half](modelsDir, baseEnv)));

  const md = [
    '# End-to-end benchmark',
    '',
    `Written by \`npm run bench:e2e\` (bench/e2e.ts) on ${new Date(started).toISOString()}, ${((Date.now() - started) / 1000).toFixed(0)} s in all${halves.length < 2 ? ` (BENCH_ONLY=${halves[0]})` : ''}.`,
    '',
    ...machineLines(quiet),
    `- Models from \`${path.relative(ROOT, modelsDir) || '.'}\``,
    '',
    'CPU columns are cores’ worth of CPU during the phase (warm-up included): the measured process, its CPU per answer, the load generator (this process), every other program on the machine, and hypervisor steal.',
    `⚠ marks a figure taken while other programs or steal used more than ${DISTURBED_CORES} cores.`,
    '',
    ...sections,
  ].join('\n');

  process.stdout.write(md + '\n');
  if (halves.length < 2) {
    progress(`BENCH_ONLY=${halves[0]}: bench/results/e2e.md left as it was`);
    return;
  }
  const out = path.join(ROOT, 'bench', 'results', 'e2e.md');
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, md);
  progress(`written to ${path.relative(ROOT, out)}`);
}

main().catch((error: unknown) => {
  process.stderr.write(
    `[bench:e2e] failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
  killChildren();
});
