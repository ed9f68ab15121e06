import type { PickedEndpoint, Picker } from '../../src/balance/picker.ts';
import type { UpstreamOutcome } from '../../src/health/upstream-outcome.ts';
import type { ProxyPolicy } from './proxy.ts';

/** For tests: one attempt, no retries, 2 s headers and body timeouts, 1 s to connect, default TLS (verified, system roots, no serverName). */
export const TEST_PROXY_POLICY: ProxyPolicy = {
  retries: 0,
  retryOn: [],
  headersTimeoutMs: 2_000,
  bodyTimeoutMs: 2_000,
  connection: { connectTimeoutMs: 1_000, tls: { ca: undefined, cert: undefined, key: undefined, serverName: undefined, verify: true }, key: 'test' },
};

/** For tests: a gRPC-Web frame, the flag byte (0x80 for trailers), 4-byte big-endian length, then `payload` (a string as UTF-8). */
export function grpcWebFrame(flags: number, payload: Buffer | string): Buffer {
  const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const prefix = Buffer.alloc(5);
  prefix[0] = flags;
  prefix.writeUInt32BE(bytes.length, 1);
  return Buffer.concat([prefix, bytes]);
}

/** For tests: `picker`, with every outcome reported to one of its picks also pushed to `reports` on its way to the balancer. */
export function recordingPicker(picker: Picker, reports: UpstreamOutcome[]): Picker {
  return {
    pick: (pickContext) => {
      const pick = picker.pick(pickContext);
      if (pick.kind === 'none') return pick;
      const recorded: PickedEndpoint = { kind: 'endpoint', instance: pick.instance, address: pick.address, done: (outcome) => (reports.push(outcome), pick.done(outcome)) };
      return recorded;
    },
    peek: (pickContext) => picker.peek(pickContext),
  };
}
