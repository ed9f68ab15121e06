import { describe, expect, it } from 'vitest';
import { GATEWAY_SEMI_SPACE_MB, setsSemiSpace, workerExecArgv } from './cluster-node-flags.ts';

const OURS = `--max-semi-space-size=${GATEWAY_SEMI_SPACE_MB}`;

describe('workerExecArgv', () => {
  it.each([
    { case: 'no flags at all', execArgv: [], nodeOptions: undefined, expected: [OURS] },
    { case: "the primary's other flags", execArgv: ['--enable-source-maps'], nodeOptions: '--max-old-space-size=512', expected: [OURS, '--enable-source-maps'] },
    { case: 'a size on the command line', execArgv: ['--max-semi-space-size=8'], nodeOptions: undefined, expected: ['--max-semi-space-size=8'] },
    { case: 'a size in V8 spelling', execArgv: ['--max_semi_space_size=64'], nodeOptions: undefined, expected: ['--max_semi_space_size=64'] },
    { case: 'a size as a separate argument', execArgv: ['--max-semi-space-size', '8'], nodeOptions: undefined, expected: ['--max-semi-space-size', '8'] },
    { case: 'a size in NODE_OPTIONS', execArgv: ['--enable-source-maps'], nodeOptions: ' --inspect=0  --max-semi-space-size=4 ', expected: ['--enable-source-maps'] },
  ])('adds the gateway size only when the user chose none: $case', ({ execArgv, nodeOptions, expected }) => {
    expect(workerExecArgv(execArgv, nodeOptions)).toEqual(expected);
  });

  it('does not take a similar flag for the semi-space size', () => {
    expect(setsSemiSpace(['--min-semi-space-size=8', '--max-semi-space-size-x=1', '--semi-space-growth-factor=2'])).toBe(false);
  });
});
