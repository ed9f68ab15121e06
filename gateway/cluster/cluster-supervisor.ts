import cluster, { type Worker } from 'node:cluster';
import { performance } from 'node:perf_hooks';
import { Gauge } from 'prom-client';
import type { Logger } from '../../src/logger.ts';
import { DRAINING, type Readiness } from '../admin/admin-sources.ts';
import { metricsRegistry } from '../../src/metrics.ts';
import { DEFAULT_WORKER_HEARTBEAT_TIMEOUT_MS } from '../config/defaults.ts';
import { HEARTBEAT_INTERVAL_MS, isGatewayMessage, type PrimaryMessage, type WorkerMessage } from './cluster-messages.ts';
import { workerExecArgv } from './cluster-node-flags.ts';
import { restartPlan, workerRestartsTotal } from './cluster-restarts.ts';

/** A worker not listening this long after its fork is stuck: it is killed, which fails the start or, later, counts as a crash. */
export const WORKER_START_TIMEOUT_MS = 30_000;
/**
 * On stop, a worker that never listened (starting, or a replacement) has no request to finish: it
 * exits as soon as it takes the drain, and is killed if it has not within this bound.
 */
export const STARTING_STOP_MS = 3_000;
/** How often the primary looks for workers whose heartbeat stopped. */
const WATCHDOG_CHECK_MS = HEARTBEAT_INTERVAL_MS;

/** Registered by the first supervisor, so that a one-process gateway (and a worker) never reports a 0 that reads as an outage. */
const WORKERS_LISTENING = 'switchboard_workers_listening';
const workersListening = new Gauge({ name: WORKERS_LISTENING, help: 'Workers listening now; 0 means the gateway accepts no connections (every worker is down or restarting).', registers: [] });

/** What the admin API shows of one worker. */
export interface WorkerView {
  readonly slot: number;
  readonly pid: number | undefined;
  readonly state: 'starting' | 'listening' | 'restarting' | 'stopped';
  /** Times this slot's worker was replaced after it exited. */
  readonly restarts: number;
  /** Upstream attempts its workers have reported, across restarts. */
  readonly requests: number;
  /** Requests its worker is serving now (as last reported, within about 100 ms). */
  readonly inFlight: number;
}

interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  /** Its worker said ready: it listens for messages (one still loading would drop them). */
  ready: boolean;
  state: WorkerView['state'];
  restarts: number;
  /** Crashes in a row, each soon after its start; sets the next restart delay. */
  crashes: number;
  requests: number;
  inFlight: number;
  startedAt: number;
  /** Last message from its worker (monotonic ms): any message shows that its event loop runs. */
  seenAt: number;
  /** Its worker was killed by the watchdog; its exit is reported as such. */
  unresponsive: boolean;
  timer: NodeJS.Timeout | undefined;
  teardown: (() => void) | undefined;
}

/** What the supervisor asks of its owner. */
export interface SupervisorHooks {
  /** A new worker in `slot` is ready for messages: send it the configuration and subscribe it to health; returns its teardown. */
  attach(send: (message: PrimaryMessage) => void, slot: number): () => void;
  /** A message from the worker in `slot`; `countRequests` adds to its slot's count. */
  message(message: WorkerMessage, countRequests: (requests: number) => void, slot: number): void;
  /** The slot's worker exited (whatever the reason; a replacement may follow). */
  exited(slot: number): void;
  /** The slot's worker exited before it ever listened while the gateway was starting. */
  failedToStart(slot: number, reason: string): void;
}

/**
 * Keeps `count` worker processes running (node:cluster, this program as each worker's entry): a
 * worker that exits without being told to is replaced, after a back-off that grows while it keeps
 * crashing soon after starting, so a crash loop never spins; the others keep serving meanwhile. A
 * listening worker whose heartbeat stops for `heartbeatTimeoutMs` (its event loop is stuck: its
 * sockets stay open and connections given to it wait forever) is killed and replaced the same way.
 */
export class WorkerSupervisor {
  private readonly slots: Slot[];
  private stopping = false;
  private started = false;
  private readonly allListening: Promise<void>;
  private markListening!: () => void;
  private watchdog: NodeJS.Timeout | undefined;
  private lastCheck = 0;
  /** Since when (monotonic ms) no worker has listened, after the start; undefined while one does. */
  private downSince: number | undefined;

  constructor(
    count: number,
    private readonly hooks: SupervisorHooks,
    private readonly log: Logger,
    private readonly startTimeoutMs = WORKER_START_TIMEOUT_MS,
    private heartbeatTimeoutMs = DEFAULT_WORKER_HEARTBEAT_TIMEOUT_MS,
  ) {
    this.slots = Array.from({ length: count }, (_, index) => ({ index, worker: undefined, ready: false, state: 'starting', restarts: 0, crashes: 0, requests: 0, inFlight: 0, startedAt: 0, seenAt: 0, unresponsive: false, timer: undefined, teardown: undefined }));
    if (!metricsRegistry.getSingleMetric(WORKERS_LISTENING)) metricsRegistry.registerMetric(workersListening);
    workersListening.set(0);
    this.allListening = new Promise((resolve) => (this.markListening = resolve));
  }

  /** Sets the heartbeat bound (0 turns the watchdog off), from the next check on; a reload changes it. */
  setHeartbeatTimeout(timeoutMs: number): void {
    this.heartbeatTimeoutMs = timeoutMs;
  }

  /** Forks every worker and resolves once all listen. */
  async start(): Promise<void> {
    // Every worker gets the gateway's young-generation size, unless the user chose one (see cluster-node-flags).
    cluster.setupPrimary({ execArgv: workerExecArgv(process.execArgv, process.env.NODE_OPTIONS) });
    for (const slot of this.slots) this.fork(slot);
    this.lastCheck = performance.now();
    this.watchdog = setInterval(() => this.checkHeartbeats(), WATCHDOG_CHECK_MS);
    this.watchdog.unref();
    await this.allListening;
    this.started = true;
  }

  /** Whether the gateway takes connections, for `/ready`: while a worker listens (the primary accepts none itself), never once stopping. */
  readiness(): Readiness {
    if (this.stopping) return DRAINING;
    if (this.slots.some((slot) => slot.state === 'listening')) return { ready: true, reason: null };
    return { ready: false, reason: this.started ? `no worker is listening (${this.slots.length} down or restarting)` : 'the workers are not listening yet' };
  }

  /** The workers as the admin API shows them. */
  view(): WorkerView[] {
    return this.slots.map((slot) => ({ slot: slot.index, pid: slot.worker?.process.pid, state: slot.state, restarts: slot.restarts, requests: slot.requests, inFlight: slot.inFlight }));
  }

  /** The workers connected and ready for messages right now (a metrics request to one still loading would go unanswered). */
  connected(): Worker[] {
    return this.connectedSlotsOf().map((slot) => slot.worker!);
  }

  /** The slots of the workers `connected()` gives, in its order. */
  connectedSlots(): number[] {
    return this.connectedSlotsOf().map((slot) => slot.index);
  }

  private connectedSlotsOf(): Slot[] {
    return this.slots.filter((slot) => slot.ready && slot.worker?.isConnected());
  }

  /** Sends `message` to every connected worker. */
  broadcast(message: PrimaryMessage): void {
    for (const worker of this.connected()) send(worker, message);
  }

  /**
   * Tells every worker to drain and resolves when all have exited; after `deadlineMs` the ones left
   * are killed, and those that never listened after `STARTING_STOP_MS` (at most `deadlineMs`): a
   * stop during the start never waits for the start. No worker is replaced from now on.
   */
  async stop(deadlineMs: number): Promise<void> {
    this.stopping = true;
    // A draining worker is bounded by `deadlineMs` alone: the watchdog no longer kills.
    clearInterval(this.watchdog);
    for (const slot of this.slots) clearTimeout(slot.timer);
    const live = this.slots.filter((slot) => slot.worker && !slot.worker.isDead());
    const running = live.map((slot) => slot.worker!);
    const exits = running.map((worker) => new Promise<void>((resolve) => (worker.isDead() ? resolve() : worker.once('exit', () => resolve()))));
    for (const worker of running) send(worker, { kind: 'switchboard:drain' });
    // One still loading may be stuck before it can take the drain (its start bound is 30 s).
    const starting = live.filter((slot) => slot.state !== 'listening').map((slot) => ({ slot: slot.index, worker: slot.worker! }));
    const startingTimer = setTimeout(() => {
      for (const { slot, worker } of starting) {
        if (worker.isDead()) continue;
        this.log.warn({ worker: slot, workerPid: worker.process.pid, boundMs: Math.min(STARTING_STOP_MS, deadlineMs) }, 'worker still starting when the gateway stopped; killed');
        worker.process.kill('SIGKILL');
      }
    }, Math.min(STARTING_STOP_MS, deadlineMs));
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), deadlineMs)));
    const result = await Promise.race([Promise.all(exits), deadline]);
    clearTimeout(timer);
    clearTimeout(startingTimer);
    if (result === 'late') {
      for (const worker of running) if (!worker.isDead()) worker.process.kill('SIGKILL');
      this.log.warn({ deadlineMs }, 'workers did not exit within the drain bound; killed');
      await Promise.all(exits);
    }
  }

  /**
   * Kills every listening worker not heard from for longer than the heartbeat bound, with SIGKILL:
   * a blocked event loop never runs a SIGTERM handler, so a SIGTERM would only add a wait. Its exit
   * then replaces it like a crash. A check that itself comes late means this process was blocked,
   * with the workers' heartbeats waiting unread in the channel: that round judges no one.
   */
  private checkHeartbeats(): void {
    const now = performance.now();
    const stalled = now - this.lastCheck > 2 * WATCHDOG_CHECK_MS;
    this.lastCheck = now;
    if (this.stopping || this.heartbeatTimeoutMs === 0) return;
    for (const slot of this.slots) {
      if (stalled) slot.seenAt = now;
      const worker = slot.worker;
      if (slot.state !== 'listening' || !worker || slot.unresponsive) continue;
      const silentMs = now - slot.seenAt;
      if (silentMs <= this.heartbeatTimeoutMs) continue;
      slot.unresponsive = true;
      this.log.warn({ worker: slot.index, workerPid: worker.process.pid, silentMs: Math.round(silentMs), heartbeatTimeoutMs: this.heartbeatTimeoutMs }, 'worker unresponsive (no heartbeat); killing it');
      worker.process.kill('SIGKILL');
    }
  }

  /**
   * Updates `switchboard_workers_listening` and says, once each, when the last listening worker
   * went (the gateway then accepts no connections) and when one listens again. The replacements go
   * on with their back-off: the primary never gives up by itself (see docs/configuration.md).
   */
  private countListening(): void {
    const listening = this.slots.filter((slot) => slot.state === 'listening').length;
    workersListening.set(listening);
    if (this.stopping) return;
    if (listening === 0 && this.downSince === undefined) {
      this.downSince = performance.now();
      this.log.error({ crashesInARow: this.slots.map((slot) => slot.crashes) }, 'no worker is listening: the gateway accepts no connections until a replacement starts');
    } else if (listening > 0 && this.downSince !== undefined) {
      this.log.warn({ downMs: Math.round(performance.now() - this.downSince) }, 'a worker listens again after none did');
      this.downSince = undefined;
    }
  }

  private fork(slot: Slot): void {
    slot.timer = undefined;
    slot.state = slot.restarts > 0 ? 'restarting' : 'starting';
    slot.startedAt = Date.now();
    slot.seenAt = performance.now();
    slot.unresponsive = false;
    const worker = cluster.fork({ SWITCHBOARD_WORKER_SLOT: String(slot.index) });
    slot.worker = worker;
    let listened = false;
    let lastFailure = '';
    let startTimedOut = false;
    // Without a bound, one stuck worker held the gateway's start (and a SIGTERM during it) forever.
    const startTimer = setTimeout(() => {
      startTimedOut = true;
      lastFailure = `it did not listen within ${this.startTimeoutMs} ms`;
      this.log.error({ worker: slot.index, workerPid: worker.process.pid, startTimeoutMs: this.startTimeoutMs }, 'worker did not listen in time; killing it');
      worker.process.kill('SIGKILL');
    }, this.startTimeoutMs);
    worker.on('message', (message: unknown) => {
      // One read off the channel after the worker's `exit` (the slot's replacement forked or not) would
      // put the dead worker's state back into the slot: its requests in flight, its instance load.
      if (!isGatewayMessage<WorkerMessage>(message) || slot.worker !== worker) return;
      slot.seenAt = performance.now();
      if (message.kind === 'switchboard:heartbeat') return;
      if (message.kind === 'switchboard:ready') {
        // A worker forked just before stop() had no listener yet when its drain was sent: it gets it now instead of a configuration to serve.
        if (this.stopping) return send(worker, { kind: 'switchboard:drain' });
        slot.ready = true;
        slot.teardown = this.hooks.attach((next) => send(worker, next), slot.index);
        return;
      }
      if (message.kind === 'switchboard:failed') {
        lastFailure = message.reason;
        return;
      }
      if (message.kind === 'switchboard:load') slot.inFlight = message.inFlight;
      if (message.kind === 'switchboard:listening') {
        listened = true;
        clearTimeout(startTimer);
        slot.state = 'listening';
        this.log.info({ worker: slot.index, workerPid: worker.process.pid, ports: Object.fromEntries(message.ports) }, 'worker listening');
        this.countListening();
        if (this.slots.every((each) => each.state === 'listening')) this.markListening();
      }
      this.hooks.message(message, (requests) => (slot.requests += requests), slot.index);
    });
    // A failed send (the worker died mid-send) is an `error` on the worker; its `exit` follows.
    worker.on('error', (error) => this.log.debug({ err: error, worker: slot.index }, 'worker channel error'));
    worker.once('exit', (code, signal) => {
      clearTimeout(startTimer);
      slot.teardown?.();
      slot.teardown = undefined;
      slot.worker = undefined;
      slot.ready = false;
      slot.inFlight = 0;
      this.hooks.exited(slot.index);
      if (this.stopping) {
        slot.state = 'stopped';
        return;
      }
      if (!this.started && !listened) {
        slot.state = 'stopped';
        this.stopping = true;
        this.hooks.failedToStart(slot.index, lastFailure || `worker exited (code ${code}, signal ${signal}) before it listened`);
        return;
      }
      const { crashes, delayMs } = restartPlan(slot.crashes, Date.now() - slot.startedAt);
      const reason = slot.unresponsive ? 'unresponsive' : startTimedOut ? 'start-timeout' : 'crashed';
      slot.crashes = crashes;
      slot.restarts += 1;
      slot.state = 'restarting';
      workerRestartsTotal.inc({ reason });
      this.log.error({ worker: slot.index, workerPid: worker.process.pid, code, signal, reason, crashesInARow: crashes, restartInMs: delayMs }, 'worker exited; replacing it');
      slot.timer = setTimeout(() => this.fork(slot), delayMs);
      this.countListening();
    });
  }
}

function send(worker: Worker, message: PrimaryMessage): void {
  if (!worker.isConnected()) return;
  worker.send(message, (error: Error | null) => {
    // The worker went away between the check and the write; its `exit` handler takes over.
    void error;
  });
}
