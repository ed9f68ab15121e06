import type { PickedEndpoint } from '../../src/balance/picker.ts';
import type { InstanceProtocol } from '../../src/discovery/instance.ts';
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
 * mismatch, not the instance's fault).
 */
const UNSUPPORTED: Transport = {
  attempt: (context, pick) => unsupported(context, pick),
  upgrade: (context, pick) => unsupported(context, pick),
  close: () => Promise.resolve(),
};

function unsupported(context: GatewayContext, pick: PickedEndpoint): Promise<AttemptResult> {
  const error = new UnsupportedProtocolError(`instance ${pick.address} speaks ${pick.instance.protocol}, which is not proxied over HTTP`);
  const result: AttemptResult = { ok: false, errorClass: 'unsupported-protocol', responseStarted: false, error };
  reportAttempt(pick, performance.now(), 0, result);
  return Promise.resolve(result);
}

/**
 * Every upstream transport, keyed by protocol + address + connection settings (connect timeout,
 * TLS), created on first use so keep-alive connections are reused across requests. The lookup is
 * one map hit. Transports are not closed when an instance leaves the registry (Envoy's grace rule
 * may still route to it); `sweep()` closes those unused for a while.
 */
export class UpstreamTransports {
  private readonly transports = new Map<string, { transport: Transport; lastUsed: number }>();

  constructor(private readonly settings: PoolSettings = DEFAULT_POOL_SETTINGS) {}

  /** The transport for `instance` at `address` with `settings`, created on first use. */
  get(instance: { readonly host: string; readonly protocol: InstanceProtocol }, address: string, settings: TransportSettings): Transport {
    if (instance.protocol === 'tcp') return UNSUPPORTED;
    const key = `${instance.protocol}|${address}|${settings.key}`;
    const entry = this.transports.get(key);
    if (entry) {
      entry.lastUsed = performance.now();
      return entry.transport;
    }
    const transport = this.create(instance, address, settings);
    this.transports.set(key, { transport, lastUsed: performance.now() });
    return transport;
  }

  /** Closes, gracefully, the transports not used for `idleMs`; returns how many it closed. */
  sweep(idleMs: number): number {
    const cutoff = performance.now() - idleMs;
    let closed = 0;
    for (const [key, entry] of this.transports) {
      if (entry.lastUsed > cutoff) continue;
      this.transports.delete(key);
      void entry.transport.close();
      closed += 1;
    }
    return closed;
  }

  /** Closes every transport, waiting for in-flight requests. */
  async close(): Promise<void> {
    const entries = [...this.transports.values()];
    this.transports.clear();
    await Promise.all(entries.map(({ transport }) => transport.close()));
  }

  private create(instance: { readonly host: string; readonly protocol: InstanceProtocol }, address: string, settings: TransportSettings): Transport {
    const target = { host: instance.host, address, connectTimeoutMs: settings.connectTimeoutMs };
    switch (instance.protocol) {
      case 'https':
        return new Http1Transport({ ...target, tls: settings.tls }, this.settings);
      case 'h2c':
      case 'grpc':
        return new Http2Transport({ ...target, tls: undefined });
      case 'h2':
      case 'grpcs':
        return new Http2Transport({ ...target, tls: settings.tls });
      default:
        return new Http1Transport({ ...target, tls: undefined }, this.settings);
    }
  }
}
