import type { Client } from 'node-zookeeper-client';
import { afterAll, beforeAll } from 'vitest';
import { startZooKeeper, type ZooKeeperCluster, type ZooKeeperOptions } from './zookeeper.ts';
import { connectZooKeeperClient } from './zookeeper-client.ts';

/** One ZooKeeper server and a client on it that reads what the code under test wrote, shared by the tests of one file; filled in before all its tests. */
export interface ZooKeeperWithReader {
  zk: ZooKeeperCluster;
  reader: Client;
}

/**
 * Starts a standalone ZooKeeper (with `options`) and connects a reader to it before all tests of the
 * file or describe block it is called in, and closes both after all; read them from a test or a later hook.
 */
export function zooKeeperWithReader(options: ZooKeeperOptions = {}): ZooKeeperWithReader {
  const fixture = {} as ZooKeeperWithReader;
  beforeAll(async () => {
    fixture.zk = await startZooKeeper(options);
    fixture.reader = await connectZooKeeperClient(fixture.zk.connectString);
  });
  afterAll(async () => {
    fixture.reader?.close();
    await fixture.zk?.close();
  });
  return fixture;
}
