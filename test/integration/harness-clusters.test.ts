import { Etcd3 } from 'etcd3';
import type { Client } from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectZooKeeperClient, startEtcdCluster, startZooKeeperEnsemble, waitFor, type EtcdCluster, type ZooKeeperCluster } from '../harness/index.ts';

/** Bound on a whole cluster's teardown: every member is SIGKILLed, so it takes far less. */
const TEARDOWN_BOUND_MS = 15_000;

/** Rejects when `operation` has not settled within `ms`. */
function within<T>(operation: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([operation, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

function zkCall<T>(call: (done: (error: unknown, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => call((error, value) => (error ? reject(error as Error) : resolve(value))));
}

describe('a 3-member etcd cluster for several-gateway tests', () => {
  let etcd: EtcdCluster;
  const clients: Etcd3[] = [];
  /** A client that talks to one member only, so a read proves replication, not a local echo. */
  const memberClient = (index: number) => {
    const client = new Etcd3({ hosts: etcd.members[index]!.clientUrl, dialTimeout: 2_000 });
    clients.push(client);
    return client;
  };
  beforeAll(async () => {
    etcd = await startEtcdCluster(3);
  });
  afterAll(async () => {
    for (const client of clients) client.close();
    await within(etcd.close(), TEARDOWN_BOUND_MS, 'closing the etcd cluster');
  });

  it('reads on one member what was written on another', async () => {
    expect(new Set(etcd.endpoints).size).toBe(3);
    await memberClient(0).put('/sb/routes/x').value('{"path":"/x"}');
    // etcd reads are linearizable by default: the third member answers with the write at once.
    expect(await memberClient(2).get('/sb/routes/x').string()).toBe('{"path":"/x"}');
  });

  it('keeps quorum with two of three members: the leader is killed, writes and reads go on', async () => {
    const leader = await etcd.leader();
    await leader.kill();
    const survivors = etcd.members.map((member, index) => ({ member, index })).filter(({ member }) => member !== leader);
    expect(survivors).toHaveLength(2);
    await etcd.leader();
    const writer = memberClient(survivors[0]!.index);
    await waitFor(async () => (await writer.put('/sb/routes/y').value('after').then(() => true)), { timeoutMs: 10_000, message: 'a write on a survivor' });
    expect(await memberClient(survivors[1]!.index).get('/sb/routes/y').string()).toBe('after');
  });
});

describe('a 3-node ZooKeeper ensemble for several-gateway tests', () => {
  let zk: ZooKeeperCluster;
  const clients: Client[] = [];
  const nodeClient = async (index: number) => {
    const client = await within(connectZooKeeperClient(zk.nodes[index]!.connectString, 4_000), 15_000, `connecting to ZooKeeper node ${index + 1}`);
    clients.push(client);
    return client;
  };
  beforeAll(async () => {
    zk = await startZooKeeperEnsemble(3);
  });
  afterAll(async () => {
    for (const client of clients) client.close();
    await within(zk.close(), TEARDOWN_BOUND_MS, 'closing the ZooKeeper ensemble');
  });

  it('reads on one node what was written on another', async () => {
    expect(zk.connectString.split(',')).toHaveLength(3);
    const writer = await nodeClient(0);
    await zkCall<string>((done) => writer.create('/written-on-1', Buffer.from('hello'), done));
    const reader = await nodeClient(2);
    // A follower may serve a read just before it applied the write (ZooKeeper reads are not linearizable): poll.
    const data = await waitFor(
      () => zkCall<Buffer>((done) => reader.getData('/written-on-1', done)).then((buffer) => buffer.toString()),
      { timeoutMs: 10_000, message: 'node 3 to see the write' },
    );
    expect(data).toBe('hello');
  });

  it('keeps quorum with two of three nodes: the leader is stopped, writes and reads go on', async () => {
    const leader = await zk.leader();
    await leader.stop();
    const survivors = zk.nodes.map((node, index) => ({ node, index })).filter(({ node }) => node !== leader);
    const newLeader = await zk.leader();
    expect(newLeader).not.toBe(leader);
    const writer = await nodeClient(survivors[0]!.index);
    // A create that landed but whose answer was lost is retried into NODE_EXISTS: that too means written.
    const create = () => zkCall<string>((done) => writer.create('/after-stop', Buffer.from('still'), done)).then(() => true, (error: { name?: string }) => (error.name === 'NODE_EXISTS' ? true : Promise.reject(error)));
    await waitFor(create, { timeoutMs: 15_000, message: 'a write on a survivor' });
    const reader = await nodeClient(survivors[1]!.index);
    expect(await waitFor(() => zkCall<Buffer>((done) => reader.getData('/after-stop', done)).then((buffer) => buffer.toString()), { timeoutMs: 10_000 })).toBe('still');
  });
});
