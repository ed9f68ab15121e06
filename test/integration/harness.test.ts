import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { Etcd3 } from 'etcd3';
import zookeeper from 'node-zookeeper-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  startEtcd,
  startEtcdCluster,
  startLocalRedis,
  redisPing,
  startTcpProxy,
  startZooKeeper,
  startZooKeeperEnsemble,
  waitFor,
  type EtcdCluster,
  type LocalRedis,
  type TcpProxy,
  type ZooKeeperCluster,
} from '../harness/index.ts';

const SESSION_TIMEOUT_MS = 6_000;
const OP_DEADLINE_MS = 1_000;
// How long "nothing arrives" is watched for; long enough for a loopback round trip to have happened many times.
const SILENCE_MS = 300;

/** Rejects with "timed out" when `operation` has not settled within `ms`; the operation itself is left running. */
function withDeadline<T>(operation: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  operation.catch(() => undefined);
  return Promise.race([operation, deadline]).finally(() => clearTimeout(timer));
}

async function connectZooKeeper(connectString: string): Promise<zookeeper.Client> {
  const client = zookeeper.createClient(connectString, { sessionTimeout: SESSION_TIMEOUT_MS, spinDelay: 100, retries: 0 });
  const connected = once(client, 'connected');
  client.connect();
  await withDeadline(connected, 10_000);
  return client;
}

function zkCreate(client: zookeeper.Client, path: string, data: string): Promise<void> {
  return new Promise((resolve, reject) => client.create(path, Buffer.from(data), (error) => (error ? reject(error) : resolve())));
}

function zkGetData(client: zookeeper.Client, path: string): Promise<string> {
  return new Promise((resolve, reject) => client.getData(path, (error, data) => (error ? reject(error) : resolve(data.toString('utf8')))));
}

describe('a standalone ZooKeeper from the harness', () => {
  let zk: ZooKeeperCluster;
  const clients: zookeeper.Client[] = [];
  beforeAll(async () => {
    zk = await startZooKeeper();
  });
  afterEach(() => {
    for (const client of clients.splice(0)) client.close();
  });
  afterAll(async () => {
    await zk?.close();
  });

  it('serves a real client create and getData in standalone mode', async () => {
    expect(zk.nodes).toHaveLength(1);
    expect(await zk.nodes[0]?.mode()).toBe('standalone');
    const client = await connectZooKeeper(zk.connectString);
    clients.push(client);
    await zkCreate(client, '/harness', 'hello');
    expect(await zkGetData(client, '/harness')).toBe('hello');
  });

  it('keeps its data and its port across restart()', async () => {
    const node = zk.nodes[0]!;
    const portBefore = node.clientPort;
    await node.restart();
    expect(node.clientPort).toBe(portBefore);
    expect(await node.mode()).toBe('standalone');
    const client = await connectZooKeeper(zk.connectString);
    clients.push(client);
    expect(await zkGetData(client, '/harness')).toBe('hello');
  });

  it('stops answering while paused and answers again after resume()', async () => {
    const node = zk.nodes[0]!;
    const client = await connectZooKeeper(zk.connectString);
    clients.push(client);
    node.pause();
    try {
      await expect(withDeadline(zkGetData(client, '/harness'), OP_DEADLINE_MS)).rejects.toThrow(/timed out/);
      expect(await node.mode()).toBe('down');
    } finally {
      node.resume();
    }
    expect(await waitFor(() => withDeadline(zkGetData(client, '/harness'), OP_DEADLINE_MS))).toBe('hello');
  });
});

describe('a three-node ZooKeeper ensemble from the harness', () => {
  let ensemble: ZooKeeperCluster;
  beforeAll(async () => {
    ensemble = await startZooKeeperEnsemble(3);
  });
  afterAll(async () => {
    await ensemble?.close();
  });

  it('has exactly one leader and two followers', async () => {
    const leader = await ensemble.leader();
    const modes = await Promise.all(ensemble.nodes.map((node) => node.mode()));
    expect(modes.filter((mode) => mode === 'leader')).toHaveLength(1);
    expect(modes.filter((mode) => mode === 'follower')).toHaveLength(2);
    expect(await leader.mode()).toBe('leader');
    expect(ensemble.connectString.split(',')).toHaveLength(3);
  });

  it('elects a new leader among the survivors when the leader is killed', async () => {
    const oldLeader = await ensemble.leader();
    await oldLeader.kill();
    expect(oldLeader.running).toBe(false);
    const newLeader = await ensemble.leader();
    expect(newLeader.id).not.toBe(oldLeader.id);
    expect(await oldLeader.mode()).toBe('down');
  });
});

describe('etcd from the harness', () => {
  let etcd: EtcdCluster;
  const clients: Etcd3[] = [];
  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterEach(() => {
    for (const client of clients.splice(0)) client.close();
  });
  afterAll(async () => {
    await etcd?.close();
  });

  function client(): Etcd3 {
    const created = new Etcd3({ hosts: etcd.endpoints });
    clients.push(created);
    return created;
  }

  it('serves a real put and get on a single member', async () => {
    expect(etcd.members).toHaveLength(1);
    await client().put('harness/key').value('v1');
    expect(await client().get('harness/key').string()).toBe('v1');
    expect((await etcd.leader()).name).toBe(etcd.members[0]?.name);
  });

  it('keeps its data and its URL across restart()', async () => {
    const member = etcd.members[0]!;
    const urlBefore = member.clientUrl;
    await member.restart();
    expect(member.clientUrl).toBe(urlBefore);
    expect(await client().get('harness/key').string()).toBe('v1');
  });

  it('lets a client call time out while paused and succeed after resume()', async () => {
    const member = etcd.members[0]!;
    const etcdClient = client();
    expect(await etcdClient.get('harness/key').string()).toBe('v1');
    member.pause();
    try {
      await expect(withDeadline(etcdClient.get('harness/key').string(), OP_DEADLINE_MS)).rejects.toThrow(/timed out/);
    } finally {
      member.resume();
    }
    expect(await waitFor(() => withDeadline(etcdClient.get('harness/key').string(), OP_DEADLINE_MS))).toBe('v1');
  });
});

describe('a three-member etcd cluster from the harness', () => {
  let cluster: EtcdCluster;
  beforeAll(async () => {
    cluster = await startEtcdCluster(3);
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it('has one leader that every member agrees on', async () => {
    expect(cluster.endpoints).toHaveLength(3);
    const leader = await cluster.leader();
    expect(cluster.members).toContain(leader);
  });

  it('elects a new leader when the leader is killed', async () => {
    const oldLeader = await cluster.leader();
    await oldLeader.kill();
    const newLeader = await cluster.leader();
    expect(newLeader.name).not.toBe(oldLeader.name);
  });
});

/** A line-free echo server that also counts the bytes it received, to see what crossed the proxy. */
async function startEchoServer(): Promise<{ server: Server; port: number; received: () => number }> {
  let received = 0;
  const server = createServer((socket) => {
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      socket.write(chunk);
    });
    socket.on('error', () => undefined);
  });
  server.listen({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('echo server has no port');
  return { server, port: address.port, received: () => received };
}

/** A client socket that collects everything echoed back to it. */
async function echoClient(port: number): Promise<{ socket: Socket; text: () => string; closed: () => boolean }> {
  const socket = connect({ host: '127.0.0.1', port });
  let text = '';
  let closed = false;
  socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  socket.on('error', () => undefined);
  socket.on('close', () => (closed = true));
  await once(socket, 'connect');
  return { socket, text: () => text, closed: () => closed };
}

describe('a TCP proxy from the harness', () => {
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  let proxy: TcpProxy;
  const sockets: Socket[] = [];
  beforeAll(async () => {
    echo = await startEchoServer();
    proxy = await startTcpProxy({ host: '127.0.0.1', port: echo.port });
  });
  afterEach(() => {
    proxy.restore();
    for (const socket of sockets.splice(0)) socket.destroy();
  });
  afterAll(async () => {
    await proxy?.close();
    echo?.server.close();
  });

  async function tracked(): Promise<Awaited<ReturnType<typeof echoClient>>> {
    const client = await echoClient(proxy.port);
    sockets.push(client.socket);
    return client;
  }

  it('relays bytes both ways while open', async () => {
    expect(proxy.address).toBe(`127.0.0.1:${proxy.port}`);
    const client = await tracked();
    client.socket.write('ping');
    await waitFor(() => client.text() === 'ping');
  });

  it('holds bytes on old and new connections while blackholed and delivers them after restore()', async () => {
    const old = await tracked();
    old.socket.write('a');
    await waitFor(() => old.text() === 'a');
    const receivedBefore = echo.received();
    proxy.blackhole();
    old.socket.write('b');
    const held = await tracked();
    held.socket.write('c');
    await expect(waitFor(() => old.text() !== 'a' || held.text() !== '' || echo.received() !== receivedBefore, { timeoutMs: SILENCE_MS })).rejects.toThrow();
    expect(old.closed()).toBe(false);
    expect(held.closed()).toBe(false);
    proxy.restore();
    await waitFor(() => old.text() === 'ab' && held.text() === 'c', { message: 'held bytes to flow after restore' });
  });

  it('closes relayed sockets and refuses new connections while cut, and relays again after restore()', async () => {
    const client = await tracked();
    client.socket.write('x');
    await waitFor(() => client.text() === 'x');
    proxy.cut();
    await waitFor(() => client.closed(), { message: 'the relayed socket to close on cut' });
    await expect(echoClient(proxy.port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    proxy.restore();
    const again = await waitFor(() => tracked(), { message: 'the proxy to accept again' });
    again.socket.write('y');
    await waitFor(() => again.text() === 'y');
  });
});

describe('redis-server from the harness', () => {
  let redis: LocalRedis;

  beforeAll(async () => {
    redis = await startLocalRedis();
  }, 30_000);

  afterAll(async () => {
    await redis?.close();
  });

  it('answers PING, stops answering while paused, and serves again on the same port after a crash and restart()', async () => {
    expect(await redisPing(redis.host, redis.port)).toBe(true);
    redis.pause();
    expect(await redisPing(redis.host, redis.port)).toBe(false);
    redis.resume();
    expect(await redisPing(redis.host, redis.port)).toBe(true);
    await redis.kill();
    expect(await redisPing(redis.host, redis.port)).toBe(false);
    await redis.restart();
    expect(await redisPing(redis.host, redis.port)).toBe(true);
  }, 30_000);
});
