import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { runTool } from './run-tool.ts';

/** Runs a tool command with its output captured. */
async function run(name: string, args: string[]): Promise<{ status: number; out: string; err: string }> {
  const [out, err] = [new PassThrough(), new PassThrough()];
  const text = (stream: PassThrough) => {
    let all = '';
    stream.on('data', (chunk: Buffer) => (all += chunk.toString('utf8')));
    return () => all;
  };
  const [outText, errText] = [text(out), text(err)];
  const status = await runTool(name, args, { out, err });
  return { status, out: outText(), err: errText() };
}

describe('runTool', () => {
  it.each([
    ['check', ['--pretty', '-c', 'x.yaml'], "switchboard check: unknown option '--pretty' (switchboard --help lists the options)\n"],
    ['explain', ['--admin'], "switchboard explain: option '-a, --admin <value>' argument missing (switchboard --help lists the options)\n"],
  ])('refuses a command line its parser refuses as a usage error, not a stack trace: %s %j', async (name, args, message) => {
    expect(await run(name, args)).toEqual({ status: 2, out: '', err: message });
  });

  it('keeps Node advice for a value that starts with a dash', async () => {
    const { status, err } = await run('check', ['-c', '-x.yaml']);
    expect(status).toBe(2);
    expect(err).toContain("'--config=-x.yaml'");
  });

  it('prints the commands for an unknown one', async () => {
    const { status, err } = await run('nope', []);
    expect(status).toBe(2);
    expect(err).toMatch(/^Usage: switchboard check/);
  });
});
