import { firstValueFrom, filter } from 'rxjs';
import { describe, expect, it } from 'vitest';
import type { Instance } from '../discovery/instance.ts';
import { componentLogger } from '../logger.ts';
import { Registration } from './registration.ts';

const INSTANCE: Instance = { id: 'u1', service: 'user', host: '127.0.0.1', port: 8081, weight: 2, protocol: 'http', metadata: {} };

/** A registration whose registry is a list of writes; `down` makes every write fail. */
class ScriptedRegistration extends Registration {
  readonly writes: Instance[] = [];
  down = false;
  constructor() {
    super(componentLogger('test-registration'), 1_000, { initialMs: 10, maxMs: 20, factor: 2, jitter: 0 });
  }
  protected async ensure(instance: Instance): Promise<void> {
    if (this.down) throw new Error('registry down');
    this.writes.push(instance);
  }
  protected async remove(): Promise<void> {}
  protected async release(): Promise<void> {}
}

describe('Registration.markDraining', () => {
  it('rewrites the registered entry with draining: true and resolves once the registry holds it', async () => {
    const registration = new ScriptedRegistration();
    registration.register(INSTANCE);
    await firstValueFrom(registration.state$.pipe(filter((state) => state === 'registered')));
    await expect(registration.markDraining(1_000)).resolves.toBe(true);
    expect(registration.writes).toEqual([INSTANCE, { ...INSTANCE, draining: true }]);
    await registration.close();
  });

  it('writes nothing when no entry is wanted, so a deregistered backend is never registered again', async () => {
    const registration = new ScriptedRegistration();
    await expect(registration.markDraining(1_000)).resolves.toBe(false);
    expect(registration.writes).toEqual([]);
    await registration.close();
  });

  it('answers false within its bound when the registry does not confirm, and deregister still ends the retries', async () => {
    const registration = new ScriptedRegistration();
    registration.register(INSTANCE);
    await firstValueFrom(registration.state$.pipe(filter((state) => state === 'registered')));
    registration.down = true;
    const startedAt = Date.now();
    await expect(registration.markDraining(150)).resolves.toBe(false);
    expect(Date.now() - startedAt).toBeLessThan(1_000);
    await registration.close();
    expect(registration.currentState()).toBe('closed');
  });
});
