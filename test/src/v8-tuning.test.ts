// The server's V8 settings: pretenuring is turned off unless node's own command line turned it on,
// and the flag set is one this Node.js accepts (an unknown flag would be ignored in silence, so a
// child process checks that V8 reports it among its options).
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { tuneV8 } from '../../src/v8-tuning.js';

describe('tuneV8', () => {
  it('turns allocation-site pretenuring off', () => {
    const set: string[] = [];
    expect(tuneV8([], (flag) => set.push(flag))).toEqual(['--no-allocation-site-pretenuring']);
    expect(set).toEqual(['--no-allocation-site-pretenuring']);
  });

  it('leaves it on when node was started with --allocation-site-pretenuring', () => {
    const set: string[] = [];
    expect(tuneV8(['--allocation-site-pretenuring'], (flag) => set.push(flag))).toEqual([]);
    expect(set).toEqual([]);
  });

  it('sets a flag this V8 knows', () => {
    const options = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8' });
    for (const flag of tuneV8([], () => {})) expect(options).toContain(flag.replace(/^--no-/, '--'));
  });
});
