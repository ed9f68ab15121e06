import zookeeper, { type Client } from 'node-zookeeper-client';

/**
 * A plain node-zookeeper-client connected to `connectString`, for tests that read or write the
 * registry beside the code under test (an independent observer, not the provider's supervisor).
 */
export function connectZooKeeperClient(connectString: string, sessionTimeoutMs = 10_000): Promise<Client> {
  const client = zookeeper.createClient(connectString, { sessionTimeout: sessionTimeoutMs });
  return new Promise((resolve) => {
    client.once('connected', () => resolve(client));
    client.connect();
  });
}
