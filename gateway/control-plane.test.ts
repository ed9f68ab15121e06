import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from './config/index.ts';
import { startControlPlane, type ControlPlane } from './control-plane.ts';

const STARTED = `
admin: false
entryPoints:
  web: { listen: "127.0.0.1:8080" }
services:
  api: { instances: ["127.0.0.1:9001"] }
routes:
  - { path: /, service: api }
`;
const MOVED = STARTED.replace('127.0.0.1:8080', '127.0.0.1:8081');

describe('the control plane on reload', () => {
  let control: ControlPlane | undefined;
  afterEach(async () => {
    await control?.close();
    control = undefined;
  });

  it.each([
    { reloads: [MOVED, MOVED.replace('path: /', 'path: /api')], warned: [['entryPoints']], why: 'names a moved listener once, not again at a later reload that changed only a route (as a config store write does)' },
    { reloads: [MOVED, STARTED.replace('127.0.0.1:8080', '127.0.0.1:8082')], warned: [['entryPoints'], ['entryPoints']], why: 'names a moved listener again when a reload moves it elsewhere' },
    { reloads: [MOVED, STARTED], warned: [['entryPoints']], why: 'says nothing when a listener moved on reload is moved back to where it listens' },
    { reloads: [STARTED.replace('path: /', 'path: /api')], warned: [], why: 'says nothing about a reload that changed only a route' },
  ])('$why', async ({ reloads, warned }) => {
    const lines: { msg: string; keys?: string[] }[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string; keys?: string[] }) });
    control = await startControlPlane(parseConfig('/etc/sb/gateway.yaml', STARTED), { log });
    for (const text of reloads) control.apply(parseConfig('/etc/sb/gateway.yaml', text));
    expect(lines.filter((line) => line.msg === 'these settings apply only after a restart').map((line) => line.keys)).toEqual(warned);
  });
});
