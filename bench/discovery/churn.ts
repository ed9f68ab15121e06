import { fork } from 'node:child_process';
import { once } from 'node:events';
import zookeeper from 'node-zookeeper-client';
import type { ChurnCommand, ChurnView } from './churn-child.ts';
import { zkCreate } from './zookeeper-writer.ts';

/** What one churn run measured in its child. */
export interface ChurnResult {
  readonly mode: 'gateway' | 'raw';
  readonly changes: number;
  readonly cpuSeconds: number;
  readonly wallSeconds: number;
  readonly rssMb: number;
  /** From the last write to the child's view matching the registry; NaN when it never did. */
  readonly convergeMs: number;
}

/** The registry layout the churn mutates: `<root>/svc-<s>/i-<i>`, as the load seeding wrote it. */
export interface ChurnTree {
  readonly connectString: string;
  readonly root: string;
  readonly services: number;
  readonly perService: number;
  /** The payload of instance `id` of `service` on `port`. */
  readonly payload: (service: string, id: string, port: number) => string;
}

/**
 * Starts a child mirroring the whole tree (`mode`), then makes `ratePerSecond` changes a second for
 * `seconds`: nine in ten move an instance to a new port (a data change), one in ten removes an
 * instance or registers it again (a membership change). Reports the child's CPU over that window.
 */
export async function measureChurn(writer: zookeeper.Client, tree: ChurnTree, mode: 'gateway' | 'raw', seconds: number, ratePerSecond: number): Promise<ChurnResult> {
  const child = fork('bench/discovery/churn-child.ts', [mode, tree.connectString, tree.root, String(tree.services), String(tree.perService)], {
    execArgv: [...(process.env.BENCH_CHILD_NODE_ARGS ?? '').split(' ').filter(Boolean), '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'warn' },
  });
  const exited = once(child, 'exit');
  const messages: Array<Record<string, unknown>> = [];
  let notify: () => void = () => undefined;
  child.on('message', (message: Record<string, unknown>) => {
    messages.push(message);
    notify();
  });
  const next = async (type: string) => {
    for (;;) {
      const found = messages.find((message) => message.type === type);
      if (found) return found;
      await Promise.race([new Promise<void>((resolve) => (notify = resolve)), exited.then(() => Promise.reject(new Error(`churn child (${mode}) exited before "${type}"`)))]);
    }
  };
  await next('ready');
  const command = (message: ChurnCommand) => child.send(message);
  command({ type: 'start' });

  const expected: ChurnView = {};
  const removed = new Set<string>();
  let port = 40_000;
  const total = Math.round(seconds * ratePerSecond);
  const started = performance.now();
  const writes: Promise<unknown>[] = [];
  for (let change = 0; change < total; change += 1) {
    const wait = started + (change * 1_000) / ratePerSecond - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const service = `svc-${(change * 7919) % tree.services}`;
    const id = `i-${(change * 31) % tree.perService}`;
    const path = `${tree.root}/${service}/${id}`;
    const key = `${service}/${id}`;
    const instances = (expected[service] ??= {});
    if (change % 10 === 9) {
      if (removed.delete(key)) {
        port += 1;
        instances[id] = port;
        writes.push(zkCreate(writer, path, tree.payload(service, id, port), zookeeper.CreateMode.PERSISTENT));
      } else {
        removed.add(key);
        instances[id] = null;
        writes.push(new Promise((resolve) => writer.remove(path, -1, resolve)));
      }
      continue;
    }
    if (removed.has(key)) continue;
    port += 1;
    instances[id] = port;
    writes.push(new Promise((resolve) => writer.setData(path, Buffer.from(tree.payload(service, id, port)), -1, resolve)));
  }
  await Promise.all(writes);
  command({ type: 'stop', expected });
  const result = await next('result');
  await exited;
  // Put every removed instance back so that a later run finds every node (it checks only what it touched).
  await Promise.all([...removed].map((key) => zkCreate(writer, `${tree.root}/${key}`, tree.payload(key.split('/')[0]!, key.split('/')[1]!, 20_000), zookeeper.CreateMode.PERSISTENT)));
  return { mode, changes: total, cpuSeconds: Number(result.cpuSeconds), wallSeconds: Number(result.wallSeconds), rssMb: Number(result.rssMb), convergeMs: Number(result.convergeMs) };
}
