// What twinlane needs of the Node.js it runs on, checked before anything else starts: the versions
// package.json's `engines` claims (the ones its native uWebSockets.js binary is built and tested
// for). Any other version would load uWebSockets.js's slow pure-JS fallback, or crash later in a
// native module; it is refused at once with a message naming the versions that work.
import { existsSync, readFileSync } from 'node:fs';
import semver from 'semver';

export interface PackageInfo {
  readonly version: string;
  /** package.json's `engines.node` range. */
  readonly nodeRange: string;
}

/** twinlane's package.json: two folders up from the compiled dist/src/, one up from src/ under the tests. */
export function readPackageInfo(): PackageInfo {
  for (const relative of ['../../package.json', '../package.json']) {
    const file = new URL(relative, import.meta.url);
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version: string; engines: { node: string } };
    if (pkg.name === 'twinlane') return Object.freeze({ version: pkg.version, nodeRange: pkg.engines.node });
  }
  throw new Error(`twinlane's package.json was not found above ${import.meta.url}. This is a bug.`);
}

export class UnsupportedRuntimeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedRuntimeError';
  }
}

/** Throws unless `nodeVersion` satisfies the package's engines range. */
export function assertSupportedNode(
  info: PackageInfo,
  nodeVersion = process.version,
  abi = process.versions.modules,
): void {
  if (semver.satisfies(nodeVersion, info.nodeRange)) return;
  throw new UnsupportedRuntimeError(
    `twinlane ${info.version} runs on Node.js ${info.nodeRange} (package.json's engines: the versions its native uWebSockets.js binary is built and tested for); ` +
      `this is Node.js ${nodeVersion} (ABI ${abi}). Install a supported version (for example with nvm: nvm install ${semver.minVersion(info.nodeRange)?.major ?? 20}).`,
  );
}
