import type { PickedEndpoint } from '../../src/balance/picker.ts';
import type { InstanceProtocol } from '../../src/discovery/instance.ts';
import { DEFAULT_DRAIN_TIMEOUT_MS } from '../config/defaults.ts';
import type { GatewayContext } from '../context.ts';
import type { AttemptResult, Transport, TransportSettings } from './transport.ts';
import { DEFAULT_POOL_SETTINGS, Http1Transport, type PoolSettings } from './transport-http1.ts';
import { Http2Transport } from './transport-http2.ts';
import { reportAttempt } from './transport-outcome.ts';

/** An instance whose protocol HTTP cannot be proxied to (code `SB_UNSUPPORTED_PROTOCOL`, class `unsupported-protocol`). */
export class UnsupportedProtocolError extends Error {
  readonly code = 'SB_UNSUPPORTED_PROTOCOL';
}

/**
 * The transport of `tcp` instances behind an HTTP route: every attempt fails at once with
 * `unsupported-protocol` (502), which never counts against the instance (it is a configuration
 * mismatch, not the instance's fault), unsent: nothing goes to the instance, so the attempt is none
 * of its requests.
 */
const UNSUPPORTED: Transport = {
  attempt: (context, pick) => unsupported(context, pick),
  upgrade: (context, pick) => unsupported(context, pick),
  close: () => Promise.resolve(),
};

function unsupported(context: GatewayContext, pick: PickedEndpoint): Promise<AttemptResult> {
  const error = new UnsupportedProtocolError(`instance ${pick.address} speaks ${pick.instance.protocol}, which is not proxied over HTTP`);
  const result: AttemptResult = { ok: false, errorClass: 'unsupported-protocol', responseStarted: false, error, unsent: true };
  reportAttempt(pick, performance.now(), undefined, 0, result);
  return Promise.resolve(result);
}

/** A transport and where it is indexed. */
interface TransportEntry {
  readonly transport: Transport;
  lastUsed: number;
  readonly settingsKey: string;
  readonly address: string;
  readonly protocol: InstanceProtocol;
}

/**
 * Every upstream transport, keyed by protocol + address + connection settings (connect timeout,
 * TLS), created on first use so keep-alive connections are reused across requests. The lookup is
 * one map hit. Transports are not closed when an instance leaves the registry (Envoy's grace rule
 * may still route to it); `sweep()` closes those unused for a while.
 */
export class UpstreamTransports {
  private readonly transports = new Map<string, TransportEntry>();
  /**
   * The same entries by settings key, then address, then protocol: the strings a request brings
   * (`settings.key`, `pick.address`) are long-lived, so their hashes are cached, where a joined
   * key would be a fresh string to build and hash on every request.
   */
  private readonly index = new Map<string, Map<string, Map<InstanceProtocol, TransportEntry>>>();

  constructor(private readonly settings: PoolSettings = DEFAULT_POOL_SETTINGS) {}

  /** The transport for `instance` at `address` with `settings`, created on first use. */
  get(instance: { readonly host: string; readonly protocol: InstanceProtocol }, address: string, settings: TransportSettings): Transport {
    if (instance.protocol === 'tcp') return UNSUPPORTED;
    const entry = this.index.get(settings.key)?.get(address)?.get(instance.protocol);
    if (entry) {
      entry.lastUsed = performance.now();
      return entry.transport;
    }
    const transport = this.create(instance, address, settings);
    const created: TransportEntry = { transport, lastUsed: performance.now(), settingsKey: settings.key, address, protocol: instance.protocol };
    this.transports.set(`${instance.protocol}|${address}|${settings.key}`, created);
    let byAddress = this.index.get(settings.key);
    if (!byAddress) {
      byAddress = new Map();
      this.index.set(settings.key, byAddress);
    }
    let byProtocol = byAddress.get(address);
    if (!byProtocol) {
      byProtocol = new Map();
      byAddress.set(address, byProtocol);
    }
    byProtocol.set(instance.protocol, created);
    return transport;
  }

  /** Closes, gracefully, the transports not used for `idleMs`; returns how many it closed. */
  sweep(idleMs: number): number {
    const cutoff = performance.now() - idleMs;
    let closed = 0;
    for (const [key, entry] of this.transports) {
      // A WebSocket open for longer than `idleMs` keeps its transport: swept, it would leave the
      // shutdown's close(), which waits for the tunnel's access log line after the drain cuts it.
      if (entry.lastUsed > cutoff || entry.transport.hasOpenTunnels?.()) continue;
      this.transports.delete(key);
      this.unindex(entry);
      void entry.transport.close();
      closed += 1;
    }
    return closed;
  }

  /**
   * Closes every transport (the gateway's shutdown), waiting for in-flight requests for at most
   * `graceMs` (the data plane gives 1 s after its drain; `shutdown.drainTimeout`'s default when left
   * out), then cutting them as `pool-closed`, counted against no instance.
   */
  async close(graceMs = DEFAULT_DRAIN_TIMEOUT_MS): Promise<void> {
    const entries = [...this.transports.values()];
    this.transports.clear();
    this.index.clear();
    await Promise.all(entries.map(({ transport }) => transport.close(graceMs)));
  }

  private unindex(entry: TransportEntry): void {
    const byAddress = this.index.get(entry.settingsKey);
    const byProtocol = byAddress?.get(entry.address);
    byProtocol?.delete(entry.protocol);
    if (byProtocol?.size === 0) byAddress!.delete(entry.address);
    if (byAddress?.size === 0) this.index.delete(entry.settingsKey);
  }

  private create(instance: { readonly host: string; readonly protocol: InstanceProtocol }, address: string, settings: TransportSettings): Transport {
    const target = { host: instance.host, address, connectTimeoutMs: settings.connectTimeoutMs };
    const pool = settings.maxConnections === undefined ? this.settings : { ...this.settings, connections: settings.maxConnections };
    switch (instance.protocol) {
      case 'https':
        return new Http1Transport({ ...target, tls: settings.tls }, pool);
      case 'h2c':
      case 'grpc':
        return new Http2Transport({ ...target, tls: undefined }, { maxSessions: pool.connections, idleMs: pool.keepAliveTimeoutMs });
      case 'h2':
      case 'grpcs':
        return new Http2Transport({ ...target, tls: settings.tls }, { maxSessions: pool.connections, idleMs: pool.keepAliveTimeoutMs });
      default:
        return new Http1Transport({ ...target, tls: undefined }, pool);
    }
  }
}
