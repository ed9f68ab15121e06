import { describe, expect, it } from 'vitest';
import { STORE_KINDS } from './config-store/store-layout.ts';
import { GATEWAY_HELP, parseGatewayArgs } from './help.ts';

describe('switchboard --help', () => {
  it('names every kind of object switchboard config reads and writes', () => {
    const kinds = /kinds: ([a-z, ]+)\./.exec(GATEWAY_HELP.replace(/\s+/g, ' '))?.[1]?.split(', ');
    expect([...(kinds ?? [])].sort()).toEqual([...STORE_KINDS].sort());
  });
});

describe('parseGatewayArgs', () => {
  it('reads the gateway\'s own flags', () => {
    expect(parseGatewayArgs(['-c', 'g.yaml', '--pretty'])).toEqual({ values: { config: 'g.yaml', pretty: true } });
    expect(parseGatewayArgs(['--help'])).toEqual({ values: { help: true } });
  });

  it.each([
    { args: ['--config', 'g.yaml', '--bogus'], named: "unknown option '--bogus'" },
    { args: ['--config', 'g.yaml', '--prety'], named: "unknown option '--prety'" },
    { args: ['-x', '--config', 'g.yaml'], named: "unknown option '-x'" },
    { args: ['g.yaml'], named: "unexpected argument 'g.yaml'" },
    { args: ['--config'], named: "'-c, --config <value>' argument missing" },
    { args: ['--pretty=yes', '--config', 'g.yaml'], named: "'--pretty' does not take an argument" },
  ])('refuses $args with a usage error that names the flag', ({ args, named }) => {
    const parsed = parseGatewayArgs(args);
    expect(parsed.usageError).toContain(named);
    expect(parsed.usageError).not.toContain('positional');
  });
});
