import zookeeper from 'node-zookeeper-client';
import { isZooKeeperError } from '../../src/zookeeper/index.ts';
import { create } from '../../src/zookeeper/zookeeper-writes.ts';

export { mkdirp as zkMkdirp } from '../../src/zookeeper/zookeeper-writes.ts';

/** Connects a plain node-zookeeper-client for writing benchmark data. */
export function connectZooKeeper(connectString: string): Promise<zookeeper.Client> {
  const client = zookeeper.createClient(connectString, { sessionTimeout: 10_000, retries: 3 });
  return new Promise((resolve) => {
    client.once('connected', () => resolve(client));
    client.connect();
  });
}

/** Creates `path`, ignoring NODE_EXISTS. */
export async function zkCreate(client: zookeeper.Client, path: string, data: string, mode: number): Promise<void> {
  try {
    await create(client, path, Buffer.from(data), mode);
  } catch (error) {
    if (!isZooKeeperError(error, 'NODE_EXISTS')) throw error;
  }
}
