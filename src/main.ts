#!/usr/bin/env node
// Entry point: check the runtime (before any native module loads) → `twinlane batch …` goes to the
// bulk-job client → load and validate the config (or print --help) → V8's settings (src/v8-tuning.ts)
// → serve (src/serve.ts, loaded only now). Exit codes: 0 after --help or a clean
// drain, 1 when start-up fails (unsupported Node.js, a missing model or provider, a taken port),
// 2 for a bad option.
import { ConfigError, helpText, loadConfig, type Config } from './config.js';
import { log } from './log.js';
import { assertSupportedNode, readPackageInfo } from './runtime.js';
import { tuneV8 } from './v8-tuning.js';

/** Exits 0 after --help, 2 on a bad option (with a message naming it). */
function configOrExit(): Readonly<Config> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(helpText());
    process.exit(0);
  }
  try {
    return loadConfig(argv, process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`twinlane: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
}

async function main(): Promise<void> {
  const pkg = readPackageInfo();
  assertSupportedNode(pkg);
  if (process.argv[2] === 'batch') {
    // `twinlane batch …`: the bulk-job client (batch/cli.ts), which exits with its own codes.
    const { batchCli } = await import('../batch/cli.js');
    process.exit(await batchCli(process.argv.slice(3)));
  }
  const config = configOrExit();
  tuneV8();
  const { serve } = await import('./serve.js');
  await serve(config, pkg);
}

main().catch((error: unknown) => {
  log.error('start-up failed', { error: error instanceof Error ? error.message : String(error) });
  process.exit(1);
});
