import { describe, expect, it } from 'vitest';

interface EventLine {
  readonly text: string;
  readonly tone: string;
}

// The dashboard's modules are plain browser JavaScript without type declarations: loaded by a path
// TypeScript does not resolve, and typed here by what the test uses.
const FORMAT_MODULE = './dashboard/dashboard-format.js';
const { describeEvent } = (await import(FORMAT_MODULE)) as { describeEvent: (event: { type: string; data: unknown }) => EventLine };

const healthy = { state: 'healthy', reason: 'check-passing', text: 'passing active health checks' };
const leftRegistry = { state: 'healthy', reason: 'left-registry', text: 'left the registry; kept while it passes checks (grace period)' };
const failing = { state: 'unhealthy', reason: 'check-failing', text: 'failing active health checks' };

describe('describeEvent', () => {
  it('names the new reason of a health change that keeps the state, not the same state twice', () => {
    const line = describeEvent({ type: 'health-changed', data: { service: 'user', id: 'user-a', address: '10.0.0.7:8080', from: healthy, to: leftRegistry } });
    expect(line.text).toBe('user/user-a: left the registry; kept while it passes checks (grace period)');
    expect(line.tone).toBe('good');
  });

  it('names both states of a health change that changes the state', () => {
    const line = describeEvent({ type: 'health-changed', data: { service: 'user', id: 'user-a', address: '10.0.0.7:8080', from: healthy, to: failing } });
    expect(line).toEqual({ text: 'user/user-a: healthy → unhealthy (failing active health checks)', tone: 'bad' });
  });

  it('does not say the grace period is over for an instance let go after leaving the registry, which may have failed a check long before', () => {
    const line = describeEvent({ type: 'instance-removed', data: { service: 'user', id: 'user-a', address: '10.0.0.7:8080', reason: 'grace-over' } });
    expect(line).toEqual({ text: 'user/user-a at 10.0.0.7:8080: no longer kept after leaving the registry', tone: 'bad' });
  });

  it('says an instance removed with the registry left it', () => {
    const line = describeEvent({ type: 'instance-removed', data: { service: 'user', id: 'user-a', address: '10.0.0.7:8080', reason: 'left-registry' } });
    expect(line.text).toBe('user/user-a at 10.0.0.7:8080: left the registry');
  });
});
