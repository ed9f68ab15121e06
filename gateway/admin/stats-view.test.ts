import { describe, expect, it } from 'vitest';
import { FlowStats } from '../telemetry/index.ts';
import { parseWindow, statsAnswer } from './stats-view.ts';

const balancers = { has: (name: string) => name === 'idle' } as never;

describe('parseWindow', () => {
  it.each([
    [null, 300],
    ['', 300],
    ['30s', 30],
    ['5m', 300],
    ['120', 120],
    ['6m', undefined],
    ['0', undefined],
    ['1h', undefined],
    ['-5', undefined],
  ])('reads %s as %s seconds', (text, seconds) => {
    expect(parseWindow(text)).toBe(seconds);
  });
});

describe('statsAnswer', () => {
  it('gives the per-second series of a service by instance, oldest first, ending with the last complete second', async () => {
    const flow = new FlowStats();
    flow.of('service', 'user').record(0, 0, 0);
    flow.instance('user', 'a:1').record(0, 0, 0);
    flow.roll(998);
    flow.of('service', 'user').record(1, 0, 0);
    flow.roll(999);
    const answer = await statsAnswer({ flow, balancers }, '/api/stats/services/user', new URLSearchParams('window=3s'), 1_000_500);
    expect(answer).toMatchObject({ status: 200, body: { service: 'user', window: 3, start: 997, end: 999, requests: [0, 1, 1], errors: [0, 0, 1], instances: { 'a:1': { requests: [0, 1, 0] } } } });
  });

  it('answers zeros for a known service without traffic, 404 for an unknown one and 400 for a bad window or a malformed name', async () => {
    const flow = new FlowStats();
    expect(await statsAnswer({ flow, balancers }, '/api/stats/services/idle', new URLSearchParams('window=2s'), 10_000)).toMatchObject({ status: 200, body: { requests: [0, 0], instances: {} } });
    expect(await statsAnswer({ flow, balancers }, '/api/stats/services/ghost', new URLSearchParams(), 10_000)).toMatchObject({ status: 404, error: 'unknown-service' });
    expect(await statsAnswer({ flow, balancers }, '/api/stats/services/idle', new URLSearchParams('window=10m'), 10_000)).toMatchObject({ status: 400, error: 'bad-window' });
    expect(await statsAnswer({ flow, balancers }, '/api/stats/services/%E0%A4%A', new URLSearchParams(), 10_000)).toMatchObject({ status: 400, error: 'bad-request' });
  });
});
