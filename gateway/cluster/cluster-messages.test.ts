import { describe, expect, it } from 'vitest';
import type { HealthSnapshot } from '../../src/health/index.ts';
import { decodeHealthSnapshot, decodeRateLimitChange, decodeUnconnected, isGatewayMessage } from './cluster-messages.ts';

const SNAPSHOT: HealthSnapshot = {
  service: 'user',
  panic: false,
  endpoints: [
    {
      address: '10.0.0.1:80',
      instance: { id: 'a', service: 'user', host: '10.0.0.1', port: 80, weight: 2, protocol: 'h2c', protocolDefaulted: true, metadata: { zone: 'z1' } },
      inRegistry: true,
      active: 'healthy',
      ejected: false,
      routable: true,
    },
    {
      address: '10.0.0.2:80',
      instance: { id: 'b', service: 'user', host: '10.0.0.2', port: 80, weight: 1, protocol: 'http', metadata: {}, draining: true },
      inRegistry: false,
      active: 'unknown',
      ejected: true,
      ejectedUntil: 1_700_000_000_000,
      routable: false,
    },
  ],
};

/** A snapshot as plain JSON, loosely typed so that tests can spoil any field. */
type Wire = { endpoints: { [key: string]: unknown; instance: { [key: string]: unknown; metadata: Record<string, unknown> } }[] } & Record<string, unknown>;

/** What a snapshot becomes after the trip through a JSON IPC channel. */
const overTheWire = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

describe('decodeHealthSnapshot', () => {
  it('gives back the snapshot the primary sent, field for field, after a JSON trip', () => {
    expect(decodeHealthSnapshot(overTheWire(SNAPSHOT))).toEqual(SNAPSHOT);
  });

  it('drops fields it does not know instead of passing them to balancers', () => {
    const wire = overTheWire(SNAPSHOT) as { endpoints: { instance: Record<string, unknown> }[] };
    wire.endpoints[0]!.instance.extra = 'x';
    expect(decodeHealthSnapshot(wire)?.endpoints[0]!.instance).not.toHaveProperty('extra');
  });

  it.each([
    ['a snapshot without endpoints', (wire: Wire) => delete (wire as Partial<Wire>).endpoints],
    ['an endpoint whose active health is not a known state', (wire: Wire) => (wire.endpoints[0]!.active = 'fine')],
    ['an instance with an unknown protocol', (wire: Wire) => (wire.endpoints[1]!.instance.protocol = 'gopher')],
    ['an instance whose port is a string', (wire: Wire) => (wire.endpoints[0]!.instance.port = '80')],
    ['metadata holding a number', (wire: Wire) => (wire.endpoints[0]!.instance.metadata.zone = 1)],
    ['a routable flag that is missing', (wire: Wire) => delete wire.endpoints[1]!.routable],
  ])('refuses %s as a whole, so a worker keeps its previous snapshot', (_name, spoil) => {
    const wire = overTheWire(SNAPSHOT) as Wire;
    spoil(wire);
    expect(decodeHealthSnapshot(wire)).toBeUndefined();
  });
});

describe('isGatewayMessage', () => {
  it("accepts the gateway's kinds and ignores Node's and prom-client's messages on the same channel", () => {
    expect(isGatewayMessage({ kind: 'switchboard:drain' })).toBe(true);
    expect(isGatewayMessage({ type: 'prom-client:getMetricsReq', requestId: 1 })).toBe(false);
    expect(isGatewayMessage({ cmd: 'NODE_CLUSTER' })).toBe(false);
    expect(isGatewayMessage('switchboard:drain')).toBe(false);
    expect(isGatewayMessage(null)).toBe(false);
  });
});

describe('decodeRateLimitChange', () => {
  it('rebuilds a worker’s fallback and recovery events and refuses malformed ones', () => {
    const fallback = { type: 'rate-limit-fallback', data: { middleware: 'shared', onRedisError: 'local', reason: 'Command timed out', worker: 2, extra: 'dropped' } };
    expect(decodeRateLimitChange(fallback)).toEqual({ type: 'rate-limit-fallback', data: { middleware: 'shared', onRedisError: 'local', reason: 'Command timed out', worker: 2 } });
    expect(decodeRateLimitChange({ type: 'rate-limit-recovered', data: { middleware: 'shared', downMs: 510 } })).toEqual({ type: 'rate-limit-recovered', data: { middleware: 'shared', downMs: 510, worker: null } });
    expect(decodeRateLimitChange({ type: 'rate-limit-fallback', data: { middleware: 'shared', onRedisError: 'sometimes', reason: 'x' } })).toBeUndefined();
    expect(decodeRateLimitChange({ type: 'config-applied', data: { middleware: 'shared' } })).toBeUndefined();
    expect(decodeRateLimitChange('rate-limit-fallback')).toBeUndefined();
  });
});

describe('decodeUnconnected', () => {
  it('rebuilds the registries not yet connected and the services unlisted, and refuses malformed ones', () => {
    const state = { registries: ['zk:127.0.0.1:2181/services'], unlisted: ['user'] };
    expect(decodeUnconnected(JSON.parse(JSON.stringify({ ...state, extra: 1 })))).toEqual(state);
    for (const malformed of [undefined, [], { registries: ['zk'] }, { registries: 'zk', unlisted: [] }, { registries: [1], unlisted: [] }, { registries: [], unlisted: [null] }]) {
      expect(decodeUnconnected(malformed), JSON.stringify(malformed)).toBeUndefined();
    }
  });
});
