// Child process of the discovery benchmark's churn run: mirrors every service of one ZooKeeper root
// and reports its own CPU time over the churn window, so the figure holds nothing but the mirror.
//   gateway: provider → aggregator → ServiceBalancers, wired as the gateway wires them
//   raw:     a bare node-zookeeper-client mirror (child and data watches, re-read on each event),
//            the least any consumer of the same library does for the same churn
// Talks to the parent over IPC: sends {ready}, gets {start}, then {stop, expected}; answers with
// {cpuSeconds, wallSeconds, rssMb, convergeMs}, where convergeMs is how long after {stop} its view
// matched the registry's final state.
import zookeeper from 'node-zookeeper-client';
import { parseConfig } from '../../gateway/config/index.ts';
import { registryBalancerSource, ServiceBalancers } from '../../gateway/service-registry.ts';
import { createProvider, DiscoveryAggregator } from '../../src/discovery/index.ts';

/** `service` → instance id → port, or null for an instance that must be absent. */
export type ChurnView = Record<string, Record<string, number | null>>;

/** Messages from the parent. */
export type ChurnCommand = { type: 'start' } | { type: 'stop'; expected: ChurnView };

const [mode, connectString, root, servicesArg, perServiceArg] = process.argv.slice(2);
const services = Number(servicesArg);
const perService = Number(perServiceArg);
if ((mode !== 'gateway' && mode !== 'raw') || !connectString || !root || !services || !perService) {
  process.stderr.write('usage: churn-child.ts <gateway|raw> <connect-string> <root> <services> <instances-per-service>\n');
  process.exit(2);
}

const mirror = mode === 'gateway' ? gatewayMirror() : rawMirror();
await waitUntil(() => mirror.loaded() >= services * perService, 60_000);
const send = (message: object) => process.send!(message);
send({ type: 'ready' });

let cpuAtStart = process.cpuUsage();
let wallAtStart = performance.now();
process.on('message', (command: ChurnCommand) => {
  if (command.type === 'start') {
    cpuAtStart = process.cpuUsage();
    wallAtStart = performance.now();
    return;
  }
  const cpu = process.cpuUsage(cpuAtStart);
  const wallSeconds = (performance.now() - wallAtStart) / 1_000;
  const stoppedAt = performance.now();
  void waitUntil(() => matches(mirror.view(), command.expected), 30_000).then((converged) => {
    send({ type: 'result', cpuSeconds: (cpu.user + cpu.system) / 1e6, wallSeconds, rssMb: process.memoryUsage().rss / 2 ** 20, convergeMs: converged ? performance.now() - stoppedAt : Number.NaN });
    process.exit(0);
  });
});

interface Mirror {
  /** Instances currently known. */
  loaded(): number;
  /** Every known instance's port, by service and id. */
  view(): ChurnView;
}

function gatewayMirror(): Mirror {
  const aggregator = new DiscoveryAggregator([createProvider(`zk://${connectString}${root}`)]);
  const balancers = new ServiceBalancers(registryBalancerSource(aggregator), parseConfig('bench.yaml', 'services: {}'));
  const view: ChurnView = {};
  let count = 0;
  // What the balancers serve: each health snapshot follows the picker built from the same change.
  balancers.health$.subscribe((snapshot) => {
    count += snapshot.endpoints.length - Object.keys(view[snapshot.service] ?? {}).length;
    view[snapshot.service] = Object.fromEntries(snapshot.endpoints.map((endpoint) => [endpoint.instance.id, endpoint.instance.port]));
  });
  aggregator.start();
  return { loaded: () => count, view: () => view };
}

function rawMirror(): Mirror {
  const client = zookeeper.createClient(connectString!, { sessionTimeout: 30_000, retries: 3 });
  const data = new Map<string, Map<string, number>>();
  let count = 0;
  const readChild = (service: string, child: string): void => {
    client.getData(`${root}/${service}/${child}`, (event) => event.getType() === zookeeper.Event.NODE_DATA_CHANGED && readChild(service, child), (error, bytes) => {
      const instances = data.get(service)!;
      if (error) {
        if (instances.delete(child)) count -= 1;
        return;
      }
      if (!instances.has(child)) count += 1;
      instances.set(child, (JSON.parse(bytes.toString()) as { port: number }).port);
    });
  };
  const listService = (service: string): void => {
    client.getChildren(`${root}/${service}`, () => listService(service), (error, children) => {
      if (error) return;
      const instances = data.get(service) ?? new Map<string, number>();
      data.set(service, instances);
      const listed = new Set(children);
      for (const child of instances.keys()) if (!listed.has(child) && instances.delete(child)) count -= 1;
      for (const child of children) if (!instances.has(child)) readChild(service, child);
    });
  };
  client.once('connected', () => client.getChildren(root!, (error, names) => !error && names.forEach(listService)));
  client.connect();
  return {
    loaded: () => count,
    view: () => Object.fromEntries([...data].map(([service, instances]) => [service, Object.fromEntries(instances)])),
  };
}

function matches(view: ChurnView, expected: ChurnView): boolean {
  return Object.entries(expected).every(([service, instances]) => {
    const seen = view[service] ?? {};
    return Object.entries(instances).every(([id, port]) => (seen[id] ?? null) === port);
  });
}

/** Polls `condition` every 20 ms; resolves false after `deadlineMs`. */
async function waitUntil(condition: () => boolean, deadlineMs: number): Promise<boolean> {
  const until = performance.now() + deadlineMs;
  while (!condition()) {
    if (performance.now() > until) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}
