import type { GatewayConfig } from '../config/index.ts';

/** A tcp entry point as `/api/tcp` shows it. */
export interface TcpEntryPointView {
  readonly name: string;
  readonly listen: string;
  /** The service of connections no `sni` entry takes; null with an `sni` table alone (they are refused). */
  readonly service: string | null;
  /** Service by TLS server name; empty without SNI routing. */
  readonly sni: Readonly<Record<string, string>>;
  /** The gateway terminates TLS (`tls`). */
  readonly tls: boolean;
  /** The gateway passes TLS through to the instances, routed by the ClientHello's server name. */
  readonly passthrough: boolean;
  /** The entry point's own PROXY protocol version; null when it leaves it to the service. */
  readonly proxyProtocol: number | null;
  readonly idleTimeoutMs: number;
}

/** The TCP traffic of one service, over every worker. */
export interface TcpServiceView {
  readonly name: string;
  readonly open: number;
  readonly total: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** Failures by class (connect-refused, connect-timeout, no-healthy-instances, idle-timeout, …). */
  readonly errors: Readonly<Record<string, number>>;
}

/** `/api/tcp`: the tcp entry points of the configuration and the TCP counters of their services. */
export interface TcpView {
  readonly entryPoints: readonly TcpEntryPointView[];
  readonly services: readonly TcpServiceView[];
}

/** A sample line; label values may hold `}` (inside quotes) and the escapes `\\`, `\"` and `\n` of the exposition format. */
const SAMPLE = /^(switchboard_tcp_[a-z_]+)\{((?:[^}"]|"(?:[^"\\]|\\.)*")*)\} (\S+)$/;
const LABEL = /(\w+)="((?:[^"\\]|\\.)*)"/g;

/** A label value as written, unescaped: a service is named as the configuration and the registries name it. */
function unescapeLabel(value: string): string {
  return value.replace(/\\(.)/g, (_escape, character: string) => (character === 'n' ? '\n' : character));
}

/**
 * The TCP view from the configuration and the Prometheus text of `/metrics`, so that it reads the
 * same numbers as Prometheus does, summed over workers by the primary when there are workers.
 * `listening` is the configuration the listeners were started with: a reload changes no address
 * and adds or removes no listener (that waits for a restart), while each listener forwards new
 * connections as `config`, the configuration in force, says (as the data plane reads it).
 */
export function tcpView(config: GatewayConfig, metricsText: string, listening: GatewayConfig = config): TcpView {
  const entryPoints = listening.entryPoints.flatMap((entryPoint): TcpEntryPointView[] => {
    if (!entryPoint.tcp) return [];
    const tcp = config.entryPoints.find((candidate) => candidate.name === entryPoint.name)?.tcp ?? entryPoint.tcp;
    const { host, port } = entryPoint.listen;
    return [{
      name: entryPoint.name,
      listen: `${host === undefined ? '' : host.includes(':') ? `[${host}]` : host}:${port}`,
      service: tcp.service ?? null,
      sni: Object.fromEntries(tcp.sni),
      tls: entryPoint.tls !== undefined,
      passthrough: entryPoint.passthrough,
      proxyProtocol: tcp.proxyProtocol ?? null,
      idleTimeoutMs: tcp.idleTimeoutMs,
    }];
  });
  const services = new Map<string, { open: number; total: number; bytesIn: number; bytesOut: number; errors: Record<string, number> }>();
  const of = (name: string) => {
    let service = services.get(name);
    if (!service) services.set(name, (service = { open: 0, total: 0, bytesIn: 0, bytesOut: 0, errors: {} }));
    return service;
  };
  for (const entryPoint of entryPoints) [...(entryPoint.service === null ? [] : [entryPoint.service]), ...Object.values(entryPoint.sni)].forEach(of);
  for (const line of metricsText.split('\n')) {
    const match = SAMPLE.exec(line);
    if (!match) continue;
    const labels = Object.fromEntries([...match[2]!.matchAll(LABEL)].map((label) => [label[1]!, unescapeLabel(label[2]!)]));
    const value = Number(match[3]);
    if (labels.service === undefined || !Number.isFinite(value)) continue;
    const service = of(labels.service);
    if (match[1] === 'switchboard_tcp_connections_open') service.open = value;
    else if (match[1] === 'switchboard_tcp_connections_total') service.total = value;
    else if (match[1] === 'switchboard_tcp_bytes_total') service[labels.direction === 'out' ? 'bytesOut' : 'bytesIn'] = value;
    else if (match[1] === 'switchboard_tcp_errors_total' && labels.class !== undefined) service.errors[labels.class] = value;
  }
  return { entryPoints, services: [...services].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, counts]) => ({ name, ...counts })) };
}
