import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeTempDir } from '../../test/harness/process.ts';
import { DemoChild } from './child.ts';

async function tailOf(log: string): Promise<string> {
  const logFile = join(await makeTempDir('sb-demo-child-'), 'child.log');
  await writeFile(logFile, log);
  return new DemoChild({ name: 'child', command: 'true', args: [], logFile, onUnexpectedExit: () => undefined }).logTail(3);
}

describe('DemoChild.logTail', () => {
  it('shows the last lines of a log', async () => {
    expect(await tailOf('one\ntwo\nthree\nfour\nfive\n')).toBe('three\nfour\nfive');
  });

  it('reaches back over the stack trace the last lines begin in, to its exception', async () => {
    const log = [
      'INFO starting',
      'ERROR [main:ZooKeeperServerMain@91] - Unexpected exception, exiting abnormally',
      'java.net.BindException: Address already in use',
      '\tat java.base/sun.nio.ch.Net.bind0(Native Method)',
      '\tat java.base/sun.nio.ch.Net.bind(Net.java:555)',
      '\t... 3 more',
      'INFO [main:ZKAuditProvider@42] - ZooKeeper audit is disabled.',
      'ERROR [main:ServiceUtils@42] - Exiting JVM with code 1',
    ].join('\n');
    expect(await tailOf(log)).toBe(log.split('\n').slice(2).join('\n'));
  });
});
