import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refusingPort } from '../../test/harness/ports.ts';
import { configCommand } from './config-cli.ts';

let folder: string;
let invalidFile: string;
let admin: string;

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'config-cli-'));
  invalidFile = join(folder, 'invalid.yaml');
  await writeFile(invalidFile, 'routes:\n  - { name: bad, path: no-slash, service: order }\n');
  // An invalid file is refused before any admin call; one made anyway fails here, never elsewhere.
  admin = `http://127.0.0.1:${await refusingPort()}`;
});

afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

/** Runs `switchboard config` with its output captured. */
async function config(...args: string[]): Promise<{ status: number; out: string; err: string }> {
  const [out, err] = [new PassThrough(), new PassThrough()];
  let [outText, errText] = ['', ''];
  out.on('data', (chunk: Buffer) => (outText += chunk.toString('utf8')));
  err.on('data', (chunk: Buffer) => (errText += chunk.toString('utf8')));
  const status = await configCommand([...args, '--admin', admin], out, err, {});
  return { status, out: outText, err: errText };
}

describe('switchboard config on an invalid file', () => {
  it('says apply wrote nothing', async () => {
    const { status, out, err } = await config('apply', '-f', invalidFile);
    expect({ status, out }).toEqual({ status: 2, out: '' });
    expect(err).toContain(`${invalidFile}: routes[bad].path`);
    expect(err).toContain(`${invalidFile}: 1 problem; nothing was written\n`);
  });

  it('says diff compared nothing, and never speaks of writing as if diff could have', async () => {
    const { status, out, err } = await config('diff', '-f', invalidFile);
    expect({ status, out }).toEqual({ status: 2, out: '' });
    expect(err).toContain(`${invalidFile}: routes[bad].path`);
    expect(err).toContain(`${invalidFile}: 1 problem; not compared with the store (diff only compares, it never writes)\n`);
    expect(err).not.toContain('nothing was written');
  });
});
