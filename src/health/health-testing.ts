// Fixtures shared by the health tests; not exported from index.ts.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { instanceAddress, type Instance } from '../discovery/instance.ts';
import type { HealthProbe, ProbeResult, ProbeTarget } from './probe.ts';

/** A real HTTP backend on a free loopback port whose answer to every path can be switched. */
export interface SwitchableBackend {
  readonly server: Server;
  readonly target: ProbeTarget;
  /** Status the next requests get. */
  status: number;
  /** Statuses served so far, in order. */
  readonly served: number[];
  /** Paths and Host headers of the requests received, in order. */
  readonly requests: Array<{ path: string; host: string | undefined }>;
  close(): Promise<void>;
}

/** Starts a backend answering `status` (200 by default) until switched. */
export async function startSwitchableBackend(status = 200): Promise<SwitchableBackend> {
  const backend = {
    status,
    served: [] as number[],
    requests: [] as Array<{ path: string; host: string | undefined }>,
  } as SwitchableBackend;
  const server = createServer((request, response) => {
    backend.requests.push({ path: request.url ?? '', host: request.headers.host });
    backend.served.push(backend.status);
    response.statusCode = backend.status;
    response.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  Object.assign(backend, {
    server,
    target: { address: `127.0.0.1:${port}`, host: '127.0.0.1', port, protocol: 'http' },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
  return backend;
}

/** A probe answering from a table per address (healthy unless set), counting its calls. */
export class ScriptedProbe {
  readonly calls: string[] = [];
  private readonly verdicts = new Map<string, boolean>();

  /** The probe function to hand to a checker. */
  readonly probe: HealthProbe = async (target: ProbeTarget): Promise<ProbeResult> => {
    this.calls.push(target.address);
    const healthy = this.verdicts.get(target.address) ?? true;
    return { healthy, detail: healthy ? 'scripted pass' : 'scripted fail' };
  };

  /** Makes later checks of `address` pass or fail. */
  set(address: string, healthy: boolean): void {
    this.verdicts.set(address, healthy);
  }

  /** How many checks `address` got. */
  count(address: string): number {
    return this.calls.filter((call) => call === address).length;
  }
}

/** An instance of service `svc` at 10.1.0.`octet`:8080. */
export function healthInstance(octet: number, weight = 1): Instance {
  return { id: `i-${octet}`, service: 'svc', host: `10.1.0.${octet}`, port: 8080, weight, protocol: 'http', metadata: {} };
}

/** The address of `healthInstance(octet)`. */
export function healthAddress(octet: number): string {
  return instanceAddress(healthInstance(octet));
}
