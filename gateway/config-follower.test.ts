import { describe, expect, it } from 'vitest';
import { ConfigFileError } from '../src/errors.ts';
import { rootLogger } from '../src/logger.ts';
import type { ConfigResult, GatewayConfig } from './config/index.ts';
import { ConfigFollower, type Running } from './config-follower.ts';

const ok = (name: string): ConfigResult => ({ ok: true, config: { name } as unknown as GatewayConfig, text: name });
const refused = (reason: string): ConfigResult => ({ ok: false, error: new ConfigFileError('gateway.yaml', reason) });

/** A follower whose start resolves when the test says, recording what reaches the running gateway. */
function follower() {
  const seen: string[] = [];
  const exits: [string, number][] = [];
  let release!: (running: Running) => void;
  let fail!: (error: Error) => void;
  const started = new Promise<Running>((resolve, reject) => ((release = resolve), (fail = reject)));
  const running: Running = {
    apply: (_config, text) => void seen.push(`apply ${text}`),
    refuse: (error) => void seen.push(`refuse ${(error as Error).message}`),
    close: async () => void seen.push('close'),
  };
  const under = new ConfigFollower({
    start: (_config, text) => {
      seen.push(`start ${text}`);
      return started;
    },
    exit: (message, code) => void exits.push([message, code]),
    log: rootLogger.child({ level: 'silent' }),
  });
  return { under, seen, exits, start: () => release(running), failStart: fail };
}

describe('ConfigFollower', () => {
  it('starts with the first good configuration and applies or refuses each later one', async () => {
    const { under, seen, start } = follower();
    under.take(ok('a'));
    start();
    // The start's continuation runs in a microtask, before the next turn of the event loop.
    await new Promise(setImmediate);
    under.take(ok('b'));
    under.take(refused('bad port'));
    await under.close();
    expect(seen).toEqual(['start a', 'apply b', 'refuse gateway.yaml: bad port', 'close']);
  });

  it('keeps what arrives while the gateway starts and applies it in order once it runs', async () => {
    const { under, seen, start } = follower();
    under.take(ok('a'));
    under.take(ok('b'));
    under.take(refused('bad route'));
    under.take(ok('c'));
    expect(seen).toEqual(['start a']);
    start();
    await under.close();
    expect(seen).toEqual(['start a', 'apply b', 'refuse gateway.yaml: bad route', 'apply c', 'close']);
  });

  it('exits 2 on a refused first configuration and 1 when the gateway cannot start', async () => {
    const first = follower();
    first.under.take(refused('no routes'));
    expect(first.exits).toEqual([['switchboard: gateway.yaml: no routes\n', 2]]);
    const second = follower();
    second.under.take(ok('a'));
    second.failStart(new Error('port in use'));
    await second.under.close();
    expect(second.exits).toEqual([['switchboard: cannot start: port in use\n', 1]]);
  });

  it('asks a start under way to stop on close, and does not exit as if the start had failed', async () => {
    const exits: [string, number][] = [];
    const under = new ConfigFollower({
      start: (_config, _text, signal) => new Promise<Running>((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error))),
      exit: (message, code) => void exits.push([message, code]),
      log: rootLogger.child({ level: 'silent' }),
    });
    under.take(ok('a'));
    await under.close();
    expect(exits).toEqual([]);
  });

  it('takes no result once it has asked to exit, which may end the process only after its logs are out', async () => {
    const first = follower();
    first.under.take(refused('no routes'));
    first.under.take(ok('a'));
    first.under.take(refused('no routes either'));
    expect(first.seen).toEqual([]);
    expect(first.exits).toEqual([['switchboard: gateway.yaml: no routes\n', 2]]);
    const second = follower();
    second.under.take(ok('a'));
    second.failStart(new Error('port in use'));
    await new Promise(setImmediate);
    second.under.take(refused('bad port'));
    expect(second.exits).toEqual([['switchboard: cannot start: port in use\n', 1]]);
  });
});
