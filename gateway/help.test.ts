import { describe, expect, it } from 'vitest';
import { STORE_KINDS } from './config-store/store-layout.ts';
import { GATEWAY_HELP, parseGatewayArgs, TOOL_COMMANDS } from './help.ts';

describe('switchboard --help', () => {
  it('names every kind of object switchboard config reads and writes', () => {
    const kinds = /kinds: ([a-z, ]+)\./.exec(GATEWAY_HELP.replace(/\s+/g, ' '))?.[1]?.split(', ');
    expect([...(kinds ?? [])].sort()).toEqual([...STORE_KINDS].sort());
  });

  it('writes every command first, before its options, as the usage error of a command after an option says', () => {
    const usage = [...GATEWAY_HELP.matchAll(/^(?:Usage:)? +switchboard (\S+)/gm)].map((match) => match[1]);
    expect(usage).toEqual(['--config', ...TOOL_COMMANDS]);
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

  it.each([
    { args: ['--pretty', 'check', '-c', 'x.yaml'], command: 'check' },
    { args: ['-c', 'g.yaml', 'explain', '--path', '/'], command: 'explain' },
    { args: ['--config=g.yaml', 'config', 'get'], command: 'config' },
  ])('refuses $command after an option with the advice to put the command first', ({ args, command }) => {
    expect(parseGatewayArgs(args).usageError).toBe(`'${command}' is a command: put it first, before any option (switchboard ${command} …; switchboard --help lists the commands)`);
  });

  it('reads a command\'s name given as the value of --config as a file name', () => {
    expect(parseGatewayArgs(['-c', 'check'])).toEqual({ values: { config: 'check' } });
  });

  it.each([
    { args: ['-c', '-x.yaml'], reason: "option '-c' argument is ambiguous: Did you forget to specify the option argument for '-c'? To specify an option argument starting with a dash use '--config=-x.yaml' or '-c-x.yaml'" },
    { args: ['--config', 'a.yaml', '--pretty', '--config', '-x.yaml'], reason: "option '--config' argument is ambiguous: Did you forget to specify the option argument for '--config'? To specify an option argument starting with a dash use '--config=-x.yaml'" },
  ])('keeps the advice on writing a value that starts with a dash, with the value given ($args)', ({ args, reason }) => {
    expect(parseGatewayArgs(args).usageError).toBe(`${reason} (switchboard --help lists the options)`);
  });
});
