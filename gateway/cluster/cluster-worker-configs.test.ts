import { describe, expect, it } from 'vitest';
import { metricsRegistry } from '../../src/metrics.ts';
import type { ConfigOutcome } from './cluster-messages.ts';
import { configIdentity, WorkerConfigs, type ConfigIdentity } from './cluster-worker-configs.ts';

const T0 = Date.parse('2026-12-04T10:00:00.000Z');
const FIRST = configIdentity(1, 'listen: 127.0.0.1:8080\n');
const SECOND = configIdentity(2, 'listen: 127.0.0.1:8081\n');

const result = (identity: ConfigIdentity, outcome: ConfigOutcome, reason?: string) => ({ kind: 'switchboard:config-result' as const, ...identity, outcome, ...(reason ? { reason } : {}) });

/** The gauge as `/metrics` serves it (read alone: the shared registry holds other tests' metrics too). */
async function behindGauge(): Promise<number | undefined> {
  return (await metricsRegistry.getSingleMetric('switchboard_workers_config_behind')?.get())?.values[0]?.value;
}

/** Two slots, each attached and running FIRST since T0. */
function inStep(): WorkerConfigs {
  const configs = new WorkerConfigs(2, FIRST);
  for (const slot of [0, 1]) {
    configs.attached(slot);
    configs.result(slot, result(FIRST, 'taken'), T0);
  }
  return configs;
}

describe('configIdentity', () => {
  it('gives equal texts the same digest whatever their sequence, and different texts different ones', () => {
    expect(configIdentity(7, 'listen: 127.0.0.1:8080\n').digest).toBe(FIRST.digest);
    expect(SECOND.digest).not.toBe(FIRST.digest);
    expect(FIRST.digest).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});

describe('WorkerConfigs', () => {
  it('shows each worker in step once it took the current text, with when, and counts none behind', async () => {
    const configs = inStep();
    expect(configs.view(0)).toEqual({ config: { ...FIRST, appliedAt: '2026-12-04T10:00:00.000Z', current: true }, refused: null });
    expect(configs.behind()).toBe(0);
    expect(await behindGauge()).toBe(0);
  });

  it('counts every worker behind after a reload until each says it took the new text', async () => {
    const configs = inStep();
    configs.sent(SECOND);
    expect(configs.behind()).toBe(2);
    expect(configs.view(1).config).toMatchObject({ sequence: 1, current: false });
    configs.result(0, result(SECOND, 'taken'), T0 + 1_000);
    expect([configs.behind(), await behindGauge()]).toEqual([1, 1]);
    configs.result(1, result(SECOND, 'taken'), T0 + 2_000);
    expect(configs.view(1)).toEqual({ config: { ...SECOND, appliedAt: '2026-12-04T10:00:02.000Z', current: true }, refused: null });
    expect([configs.behind(), await behindGauge()]).toEqual([0, 0]);
  });

  it('keeps the running text of a worker that refused the new one, with the refusal, and counts it behind', async () => {
    const configs = inStep();
    configs.sent(SECOND);
    configs.result(0, result(SECOND, 'taken'), T0 + 1_000);
    configs.result(1, result(SECOND, 'refused', 'entryPoints[0].tls: the key does not match the certificate'), T0 + 3_000);
    expect(configs.view(1)).toEqual({
      config: { ...FIRST, appliedAt: '2026-12-04T10:00:00.000Z', current: false },
      refused: { ...SECOND, reason: 'entryPoints[0].tls: the key does not match the certificate', at: '2026-12-04T10:00:03.000Z' },
    });
    expect([configs.behind(), await behindGauge()]).toEqual([1, 1]);
  });

  it('changes nothing for a superseded text', () => {
    const configs = inStep();
    configs.sent(SECOND);
    configs.result(0, result(FIRST, 'superseded'), T0 + 1_000);
    expect(configs.view(0)).toEqual({ config: { ...FIRST, appliedAt: '2026-12-04T10:00:00.000Z', current: false }, refused: null });
  });

  it('counts a replacement worker behind until it took the text it got at its start, and no slot without a worker', async () => {
    const configs = inStep();
    configs.result(1, result(FIRST, 'refused', 'a reason of the old process'), T0);
    configs.exited(1);
    // A slot waiting for its replacement runs nothing: switchboard_workers_listening says so, not this count.
    expect([configs.behind(), configs.view(1).config]).toEqual([0, null]);
    configs.attached(1);
    expect(configs.view(1)).toEqual({ config: null, refused: null });
    expect([configs.behind(), await behindGauge()]).toEqual([1, 1]);
    configs.result(1, result(FIRST, 'taken'), T0 + 5_000);
    expect(configs.view(1).config).toMatchObject({ ...FIRST, current: true });
    expect([configs.behind(), await behindGauge()]).toEqual([0, 0]);
  });

  it('ignores a result from a slot whose worker exited', () => {
    const configs = inStep();
    configs.exited(0);
    configs.result(0, result(FIRST, 'taken'), T0 + 1_000);
    expect(configs.view(0).config).toBeNull();
  });
});
