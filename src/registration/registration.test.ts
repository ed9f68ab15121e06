import { firstValueFrom, filter } from 'rxjs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { BackoffOptions } from '../backoff.ts';
import { encodeInstance } from '../discovery/instance-codec.ts';
import type { Instance } from '../discovery/instance.ts';
import { normalizePrefix, parseInstanceKey } from '../discovery/etcd/etcd-key.ts';
import { pino } from 'pino';
import { componentLogger, type Logger } from '../logger.ts';
import { waitFor } from '../../test/harness/wait.ts';
import { watchTimersOf } from '../../test/harness/fake-timers.ts';
import { RegistryRefusalError } from '../errors.ts';
import { instanceEntry, Registration } from './registration.ts';

const INSTANCE: Instance = { id: 'u1', service: 'user', host: '127.0.0.1', port: 8081, weight: 2, protocol: 'http', metadata: {} };

/** A registration whose registry is a list of writes; `down` makes every write fail. */
class ScriptedRegistration extends Registration {
  readonly writes: Instance[] = [];
  down = false;
  constructor(backoff: BackoffOptions = { initialMs: 10, maxMs: 20, factor: 2, jitter: 0 }, log: Logger = componentLogger('test-registration')) {
    super(log, 1_000, backoff);
  }
  protected async ensure(instance: Instance): Promise<void> {
    if (this.down) throw new Error('registry down');
    this.beforeEntryWrite();
    this.writes.push(instance);
  }
  protected async remove(): Promise<void> {}
  protected async release(): Promise<void> {}
  /** The registry lost the entry (a session expiry, a lost lease, another client's deletion): the subclass's `reconcile()`. */
  lose(): void {
    this.reconcile();
  }
  /** A watch reports `value` in the entry, under a spelling whose readers take no value at all: any value but ours is repaired. */
  found(value: string): void {
    this.entryFound('/services/user/u1', value, { keyOf: () => '/services/user/u1', encode: encodeInstance, problem: () => 'readers take nothing' });
  }
}

/** A promise and the function that resolves it: a registry call the test holds and releases. */
function gate(): { opened: Promise<void>; open(): void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

/** A registry of one entry in memory whose writes and deletes wait for the test to open `writes` / `removals`. */
class GatedRegistration extends Registration {
  present = false;
  writes = gate();
  removals = gate();
  readonly calls: string[] = [];
  /** Each value written, once its write was answered. */
  readonly wrote: Instance[] = [];
  constructor() {
    super(componentLogger('test-registration'), 1_000, { initialMs: 10, maxMs: 20, factor: 2, jitter: 0 });
  }
  protected async ensure(instance: Instance): Promise<void> {
    this.calls.push('ensure');
    this.beforeEntryWrite();
    await this.writes.opened;
    this.present = true;
    this.wrote.push(instance);
  }
  /** A value another client wrote that readers cannot take: the subclass's `rewrite()`. */
  repair(): void {
    this.rewrite();
  }
  protected async remove(): Promise<void> {
    this.calls.push('remove');
    await this.removals.opened;
    this.present = false;
  }
  protected async release(): Promise<void> {}
}

/** Every registry call of a GatedRegistration is in memory: one macrotask turn runs all that is not gated. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('Registration, the last call wins', () => {
  it('keeps an entry registered again while a pass was running, instead of running the removal asked for in between', async () => {
    const registration = new GatedRegistration();
    registration.removals.open();
    registration.register(INSTANCE);
    await settle();
    const deregistered = registration.deregister();
    registration.register(INSTANCE);
    registration.writes.open();
    await deregistered;
    await settle();
    expect(registration.present).toBe(true);
    expect(registration.currentState()).toBe('registered');
    expect(registration.calls).not.toContain('remove');
    await registration.close();
    expect(registration.present).toBe(false);
  });

  it('writes the entry again after a removal that had already started when register() came', async () => {
    const registration = new GatedRegistration();
    registration.writes.open();
    registration.register(INSTANCE);
    await firstValueFrom(registration.state$.pipe(filter((state) => state === 'registered')));
    const deregistered = registration.deregister();
    await settle();
    expect(registration.calls).toEqual(['ensure', 'remove']);
    registration.register(INSTANCE);
    registration.removals.open();
    await deregistered;
    await settle();
    expect(registration.calls).toEqual(['ensure', 'remove', 'ensure']);
    expect(registration.present).toBe(true);
    expect(registration.currentState()).toBe('registered');
    await registration.close();
  });

  it('removes the entry once the running pass ends when no register() follows the deregister()', async () => {
    const registration = new GatedRegistration();
    registration.removals.open();
    registration.register(INSTANCE);
    await settle();
    const deregistered = registration.deregister();
    registration.writes.open();
    await deregistered;
    expect(registration.calls).toEqual(['ensure', 'remove']);
    expect(registration.present).toBe(false);
    expect(registration.currentState()).toBe('unregistered');
    await registration.close();
  });
});

describe('Registration.mayHoldEntry', () => {
  /** A registry whose removals fail while `removalsFail` is set (a delete lost with its connection). */
  class FailingRemovals extends ScriptedRegistration {
    removalsFail = false;
    removals = 0;
    protected override async remove(): Promise<void> {
      this.removals += 1;
      if (this.removalsFail) throw new Error('connection lost during the delete');
    }
  }

  /** A registry that answers no connect until `reached` opens: each pass waits for it, then sends its write. */
  class UnreachedRegistration extends ScriptedRegistration {
    reached = gate();
    refused = 0;
    protected override async ensure(instance: Instance): Promise<void> {
      await this.reached.opened;
      try {
        this.beforeEntryWrite();
      } catch (error) {
        this.refused += 1;
        throw error;
      }
      this.writes.push(instance);
    }
  }

  it('is false while the registry was never reached, retrying or not, and a deregister() then resolves at once and nothing is written after it', async () => {
    const failing = new ScriptedRegistration();
    failing.down = true;
    failing.register(INSTANCE);
    await firstValueFrom(failing.state$.pipe(filter((state) => state === 'retrying')));
    expect(failing.mayHoldEntry()).toBe(false);
    await failing.close();

    const waiting = new UnreachedRegistration();
    waiting.register(INSTANCE);
    await settle();
    expect(waiting.currentState()).toBe('registering');
    expect(waiting.mayHoldEntry()).toBe(false);
    // The pass still waits for its connection: the old registration waited for it, up to the whole bound.
    let deregistered = false;
    void waiting.deregister(60_000).then(() => (deregistered = true));
    await settle();
    expect(deregistered).toBe(true);
    expect(waiting.currentState()).toBe('unregistered');
    // The connection comes after all: the pass sends nothing for an entry no longer wanted.
    waiting.reached.open();
    await waitFor(() => waiting.refused === 1, { timeoutMs: 5_000, message: 'the pass to give up its write' });
    expect(waiting.writes).toEqual([]);
    expect(waiting.mayHoldEntry()).toBe(false);
    await waiting.close();
  });

  it('is true from the moment a write is sent, before the registry answered it', async () => {
    const registration = new GatedRegistration();
    registration.register(INSTANCE);
    await settle();
    expect(registration.calls).toEqual(['ensure']);
    expect(registration.currentState()).toBe('registering');
    expect(registration.mayHoldEntry()).toBe(true);
    // Its answer never comes within the bound: the removal waits for the pass, and is not confirmed.
    await registration.deregister(50);
    expect(registration.mayHoldEntry()).toBe(true);
    registration.writes.open();
    registration.removals.open();
    await waitFor(() => !registration.mayHoldEntry(), { timeoutMs: 5_000, message: 'the removal to be confirmed' });
    expect(registration.present).toBe(false);
    await registration.close();
  });

  it('is false before anything is written and after a removal the registry confirmed', async () => {
    const registration = new FailingRemovals();
    expect(registration.mayHoldEntry()).toBe(false);
    registration.register(INSTANCE);
    await firstValueFrom(registration.state$.pipe(filter((state) => state === 'registered')));
    expect(registration.mayHoldEntry()).toBe(true);
    await registration.deregister();
    expect(registration.currentState()).toBe('unregistered');
    expect(registration.mayHoldEntry()).toBe(false);
    await registration.close();
  });

  it('stays true after a removal that failed, although the state reads unregistered, and the removal is retried until the registry confirms it', async () => {
    const registration = new FailingRemovals();
    registration.register(INSTANCE);
    await firstValueFrom(registration.state$.pipe(filter((state) => state === 'registered')));
    registration.removalsFail = true;
    await registration.deregister(100);
    expect(registration.currentState()).toBe('unregistered');
    expect(registration.mayHoldEntry()).toBe(true);
    const triedBefore = registration.removals;
    expect(triedBefore).toBeGreaterThan(1);
    // The registry answers again: the removal goes through without another deregister().
    registration.removalsFail = false;
    await waitFor(() => !registration.mayHoldEntry(), { timeoutMs: 5_000, message: 'the removal to be retried and confirmed' });
    expect(registration.removals).toBeGreaterThan(triedBefore);
    await registration.close();
  });

  it('tells when the retried removal is confirmed, and answers false within its bound while the registry refuses', async () => {
    const registration = new FailingRemovals();
    registration.register(INSTANCE);
    await firstValueFrom(registration.state$.pipe(filter((state) => state === 'registered')));
    registration.removalsFail = true;
    await registration.deregister(100);
    expect(await registration.removalConfirmed(50)).toBe(false);
    const confirmed = registration.removalConfirmed(5_000);
    registration.removalsFail = false;
    expect(await confirmed).toBe(true);
    expect(registration.mayHoldEntry()).toBe(false);
    // Nothing is left unconfirmed: at once.
    expect(await registration.removalConfirmed(0)).toBe(true);
    await registration.close();
  });

  it('gives up a failed removal once an entry is wanted again, and writes it', async () => {
    const registration = new FailingRemovals();
    registration.register(INSTANCE);
    await firstValueFrom(registration.state$.pipe(filter((state) => state === 'registered')));
    registration.removalsFail = true;
    await registration.deregister(100);
    registration.register(INSTANCE);
    await firstValueFrom(registration.state$.pipe(filter((state) => state === 'registered')));
    expect(registration.writes).toEqual([INSTANCE, INSTANCE]);
    expect(registration.mayHoldEntry()).toBe(true);
    // The next deregister() runs one removal of its own and is confirmed.
    registration.removalsFail = false;
    const tried = registration.removals;
    await registration.deregister();
    expect(registration.removals).toBe(tried + 1);
    expect(registration.mayHoldEntry()).toBe(false);
    await registration.close();
  });

  describe('on a fake clock', () => {
    afterEach(() => {
      // The spies wrap the fake clock's functions: put back before the clock is.
      vi.restoreAllMocks();
      vi.useRealTimers();
    });

    it('ends the retries of a failed removal on close(), leaving no timer armed and no attempt after it', async () => {
      vi.useFakeTimers();
      // Every backoff delay is RETRY_MS, a duration no other timer in this test is set for.
      const RETRY_MS = 17;
      const retryTimers = watchTimersOf(RETRY_MS);
      const registration = new FailingRemovals({ initialMs: RETRY_MS, maxMs: RETRY_MS, jitter: 0 });
      registration.register(INSTANCE);
      await firstValueFrom(registration.state$.pipe(filter((state) => state === 'registered')));
      registration.removalsFail = true;
      const deregistered = registration.deregister(100);
      await vi.advanceTimersByTimeAsync(100);
      await deregistered;
      // Retried while the bound ran: a backoff timer waits for the next attempt.
      expect(registration.removals).toBeGreaterThan(1);
      expect(retryTimers.armed()).toHaveLength(1);
      await registration.close();
      const tried = registration.removals;
      expect(retryTimers.armed()).toEqual([]);
      await vi.advanceTimersByTimeAsync(1_000);
      expect(registration.removals).toBe(tried);
      expect(registration.currentState()).toBe('closed');
    });
  });
});

describe('instanceEntry', () => {
  it.each([
    ['/services', '/services/user/u1'],
    ['/services/', '/services/user/u1'],
    ['/a/b', '/a/b/user/u1'],
    ['/', '/user/u1'],
  ])('puts an instance under the root %s at %s, a key the gateway reads back', (root, key) => {
    expect(instanceEntry(root).keyOf(INSTANCE)).toBe(key);
    expect(parseInstanceKey(normalizePrefix(root), key)).toEqual({ service: 'user', instanceId: 'u1' });
  });
});

describe('Registration.markDraining', () => {
  it('rewrites the registered entry with draining: true and resolves once the registry holds it', async () => {
    const registration = new ScriptedRegistration();
    registration.register(INSTANCE);
    await firstValueFrom(registration.state$.pipe(filter((state) => state === 'registered')));
    await expect(registration.markDraining(1_000)).resolves.toBe(true);
    expect(registration.writes).toEqual([INSTANCE, { ...INSTANCE, draining: true }]);
    await registration.close();
  });

  it('marks an entry a pass is writing (its first write sent, or a repair\'s rewrite) once that pass is done, instead of refusing: a SIGTERM then drained an unmarked entry', async () => {
    const registration = new GatedRegistration();
    registration.register(INSTANCE);
    await settle();
    // The first write is sent, unanswered: the registry may hold the entry, which gateways may route to.
    expect([registration.currentState(), registration.mayHoldEntry()]).toEqual(['registering', true]);
    const first = registration.markDraining(1_000);
    registration.writes.open();
    await expect(first).resolves.toBe(true);
    expect(registration.wrote).toEqual([INSTANCE, { ...INSTANCE, draining: true }]);

    const again = new GatedRegistration();
    again.writes.open();
    again.register(INSTANCE);
    await firstValueFrom(again.state$.pipe(filter((state) => state === 'registered')));
    again.writes = gate();
    again.repair();
    await settle();
    expect(again.currentState()).toBe('registering');
    const rewriting = again.markDraining(1_000);
    again.writes.open();
    await expect(rewriting).resolves.toBe(true);
    expect(again.wrote).toEqual([INSTANCE, INSTANCE, { ...INSTANCE, draining: true }]);
    registration.removals.open();
    again.removals.open();
    await Promise.all([registration.close(), again.close()]);
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

/** A registration whose registry fails its first two writes with `failure(attempt)` (a refusal of who asked, or an outage). */
class RefusingRegistration extends Registration {
  readonly attempts: number[] = [];
  /** `warnings`: the messages of the warnings it logs. */
  constructor(
    private readonly failure: (attempt: number) => Error,
    readonly warnings: string[] = [],
  ) {
    super(pino({ level: 'warn' }, { write: (line: string) => void (warnings.push((JSON.parse(line) as { msg: string }).msg)) }), 1_000, { initialMs: 10, maxMs: 20, factor: 2, jitter: 0 });
    this.refusedRetryMs = 1_000;
  }
  protected async ensure(): Promise<void> {
    this.attempts.push(performance.now());
    if (this.attempts.length < 3) throw this.failure(this.attempts.length);
  }
  protected async remove(): Promise<void> {}
  protected async release(): Promise<void> {}
}

describe('Registration entry repair', () => {
  afterEach(() => vi.useRealTimers());

  it('never repairs the value it writes itself, whatever the entry spelling says of it: an agent never fights itself', async () => {
    vi.useFakeTimers();
    const warnings: string[] = [];
    const log = componentLogger('test-registration');
    vi.spyOn(log, 'warn').mockImplementation((...args: unknown[]) => void warnings.push(String(args.at(-1))));
    const registration = new ScriptedRegistration(undefined, log);
    registration.register(INSTANCE);
    await vi.advanceTimersByTimeAsync(10);
    expect(registration.writes).toHaveLength(1);
    registration.found(encodeInstance(INSTANCE));
    await vi.advanceTimersByTimeAsync(2_000);
    expect([registration.writes.length, warnings]).toEqual([1, []]);
    registration.found('{"id":');
    await vi.advanceTimersByTimeAsync(10);
    expect(registration.writes).toHaveLength(2);
    await registration.close();
  });

  it('drops a repair that waits when deregistered: registered again, the entry is written once, not once more by the old repair', async () => {
    vi.useFakeTimers();
    const registration = new ScriptedRegistration();
    registration.register(INSTANCE);
    await vi.advanceTimersByTimeAsync(10);
    // The first repair is at once, the second waits 0.5-1 s.
    registration.found('{"id":');
    await vi.advanceTimersByTimeAsync(10);
    registration.found('{"id":');
    expect(registration.writes).toHaveLength(2);
    const deregistered = registration.deregister();
    await vi.advanceTimersByTimeAsync(10);
    await deregistered;
    registration.register(INSTANCE);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(registration.writes).toHaveLength(3);
    await registration.close();
  });
});

describe('Registration retries', () => {
  it('asks a registry that refused who asked again no sooner than the refusal wait, and one that failed at backoff speed', async () => {
    const refused = new RefusingRegistration(() => new RegistryRefusalError('etcd refused etcd user "gw" the right to write /sb/peers/a'));
    const failed = new RefusingRegistration(() => new Error('connect ECONNREFUSED'));
    refused.register(INSTANCE);
    failed.register(INSTANCE);
    await waitFor(() => refused.attempts.length === 3 && failed.attempts.length === 3, { timeoutMs: 10_000 });
    const gaps = (attempts: number[]) => attempts.slice(1).map((at, index) => at - attempts[index]!);
    // Timers never fire early (by more than a millisecond's rounding); a loaded machine only makes them late.
    for (const gap of gaps(refused.attempts)) expect(gap).toBeGreaterThanOrEqual(995);
    expect(Math.min(...gaps(failed.attempts))).toBeLessThan(995);
    // A refusal is not reported as an outage.
    expect(refused.warnings).toEqual(['registry refused the registration; asking again every 1 s until it is granted']);
    expect(failed.warnings).toEqual(['registry unreachable; retrying with backoff']);
    await Promise.all([refused.close(), failed.close()]);
  });

  it('warns again when a retried registration fails for the other reason: an outage, then a refusal', async () => {
    const changing = new RefusingRegistration((attempt) => (attempt === 1 ? new Error('connect ECONNREFUSED') : new RegistryRefusalError('etcd refused etcd user "gw" the right to write /sb/peers/a')));
    changing.register(INSTANCE);
    await waitFor(() => changing.currentState() === 'registered', { timeoutMs: 10_000 });
    expect(changing.warnings).toEqual(['registry unreachable; retrying with backoff', 'registry refused the registration; asking again every 1 s until it is granted']);
    await changing.close();
  });
});

describe('Registration logs', () => {
  it('logs registering and registered at info for the first write, and a rewrite of the entry it holds at debug only', async () => {
    const lines: { level: number; msg: string }[] = [];
    const registration = new ScriptedRegistration(undefined, pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) }));
    registration.register(INSTANCE);
    await waitFor(() => registration.currentState() === 'registered');
    registration.register({ ...INSTANCE, weight: 3 });
    await waitFor(() => registration.writes.length === 2 && registration.currentState() === 'registered');
    const info = lines.filter((line) => line.level === 30).map((line) => line.msg);
    const debug = lines.filter((line) => line.level === 20).map((line) => line.msg);
    expect(info).toEqual(['registration registering', 'registration registered']);
    expect(debug).toEqual(['registration registering', 'registration registered']);
    await registration.close();
  });

  it('logs at info the entry written again after the registry lost it (a session expiry, a lost lease), and after a removal', async () => {
    const lines: { level: number; msg: string }[] = [];
    const registration = new ScriptedRegistration(undefined, pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) }));
    registration.register(INSTANCE);
    await waitFor(() => registration.currentState() === 'registered');
    registration.lose();
    await waitFor(() => registration.writes.length === 2 && registration.currentState() === 'registered');
    // The removal ran (the health verdict flapped) and a register() wants the entry back: written anew.
    void registration.deregister();
    registration.register(INSTANCE);
    await waitFor(() => registration.writes.length === 3 && registration.currentState() === 'registered');
    const info = lines.filter((line) => line.level === 30).map((line) => line.msg);
    expect(info).toEqual(Array<string[]>(3).fill(['registration registering', 'registration registered']).flat());
    await registration.close();
  });
});
