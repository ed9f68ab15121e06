import { describe, expect, it } from 'vitest';
import { healthVerdict } from './health-state.ts';

describe('healthVerdict', () => {
  it.each([
    { active: 'healthy', ejected: true, inRegistry: true, checks: true, state: 'unhealthy', reason: 'ejected' },
    { active: 'unhealthy', ejected: false, inRegistry: true, checks: true, state: 'unhealthy', reason: 'check-failing' },
    { active: 'healthy', ejected: false, inRegistry: false, checks: true, state: 'healthy', reason: 'left-registry' },
    { active: 'unknown', ejected: false, inRegistry: false, checks: false, state: 'unknown', reason: 'left-registry' },
    { active: 'healthy', ejected: false, inRegistry: true, checks: true, state: 'healthy', reason: 'check-passing' },
    { active: 'unknown', ejected: false, inRegistry: true, checks: true, state: 'unknown', reason: 'check-pending' },
    { active: 'unknown', ejected: false, inRegistry: true, checks: false, state: 'healthy', reason: 'registered' },
  ] as const)('calls active=$active ejected=$ejected inRegistry=$inRegistry checks=$checks $state ($reason)', ({ active, ejected, inRegistry, checks, state, reason }) => {
    expect(healthVerdict({ active, ejected, inRegistry }, checks)).toEqual({ state, reason });
  });
});
