import { createHash } from 'node:crypto';
import { Gauge } from 'prom-client';
import { metricsRegistry } from '../../src/metrics.ts';
import type { WorkerMessage } from './cluster-messages.ts';

/**
 * Which configuration text the primary sent: `sequence` counts the texts it sent since it started
 * (1 is the one it started with), `digest` is the text's SHA-256 (base64url, as the config store's
 * `listingDigest`), equal for equal texts whichever gateway or sequence sent them.
 */
export interface ConfigIdentity {
  readonly sequence: number;
  readonly digest: string;
}

/** The identity of the `sequence`-th text the primary sends, `text`. */
export function configIdentity(sequence: number, text: string): ConfigIdentity {
  return { sequence, digest: createHash('sha256').update(text).digest('base64url') };
}

/** What `/api/workers` shows of one worker's configuration. */
export interface WorkerConfigView {
  /** The text its worker runs and when it applied it (ISO time the primary heard so); null before its worker took one. */
  readonly config: (ConfigIdentity & { readonly appliedAt: string; readonly current: boolean }) | null;
  /** The last text its worker refused (it kept its running one), why and when; null if none since it started. */
  readonly refused: (ConfigIdentity & { readonly reason: string; readonly at: string }) | null;
}

interface SlotConfig {
  /** A worker process runs in the slot (attached to the primary's messages): only such a worker can be behind. */
  running: boolean;
  config: (ConfigIdentity & { readonly appliedAt: number }) | undefined;
  refused: (ConfigIdentity & { readonly reason: string; readonly at: number }) | undefined;
}

/** Registered by the first primary, so that a one-process gateway (and a worker) shows no workers' series. */
const WORKERS_CONFIG_BEHIND = 'switchboard_workers_config_behind';
const workersConfigBehind = new Gauge({ name: WORKERS_CONFIG_BEHIND, help: "Workers running that do not run the primary's current configuration (not applied yet, or refused).", registers: [] });

/**
 * The configuration each worker slot runs, as its worker's `config-result` messages say, against the
 * one the primary sent last (`sent`). Keeps `switchboard_workers_config_behind` at the number of
 * running workers whose configuration is not the primary's current one: a worker still applying it,
 * one that refused it, and a new worker until it applied the one it got at its start.
 */
export class WorkerConfigs {
  private readonly slots: SlotConfig[];

  constructor(
    count: number,
    private current: ConfigIdentity,
  ) {
    this.slots = Array.from({ length: count }, () => ({ running: false, config: undefined, refused: undefined }));
    if (!metricsRegistry.getSingleMetric(WORKERS_CONFIG_BEHIND)) metricsRegistry.registerMetric(workersConfigBehind);
    this.count();
  }

  /** The identity of the text the primary sends now (to every worker, and to each new one at its start). */
  get latest(): ConfigIdentity {
    return this.current;
  }

  /** The primary sent a new text to every worker. */
  sent(identity: ConfigIdentity): void {
    this.current = identity;
    this.count();
  }

  /** A new worker in `slot` is about to get the current text: it runs none yet, and the previous worker's refusal is not its own. */
  attached(slot: number): void {
    this.slots[slot] = { running: true, config: undefined, refused: undefined };
    this.count();
  }

  /** The slot's worker exited: the slot runs nothing until its replacement is attached. */
  exited(slot: number): void {
    this.slots[slot] = { running: false, config: undefined, refused: this.slots[slot]?.refused };
    this.count();
  }

  /** Records a `config-result` of the slot's worker at `now` (epoch ms); a superseded text changes nothing. */
  result(slot: number, message: Extract<WorkerMessage, { kind: 'switchboard:config-result' }>, now: number): void {
    const state = this.slots[slot];
    if (!state?.running) return;
    const identity = { sequence: message.sequence, digest: message.digest };
    if (message.outcome === 'taken') state.config = { ...identity, appliedAt: now };
    else if (message.outcome === 'refused') state.refused = { ...identity, reason: message.reason ?? 'refused', at: now };
    this.count();
  }

  /** The slot's configuration as `/api/workers` shows it. */
  view(slot: number): WorkerConfigView {
    const { config, refused } = this.slots[slot] ?? { config: undefined, refused: undefined };
    return {
      config: config ? { sequence: config.sequence, digest: config.digest, appliedAt: new Date(config.appliedAt).toISOString(), current: config.sequence === this.current.sequence } : null,
      refused: refused ? { sequence: refused.sequence, digest: refused.digest, reason: refused.reason, at: new Date(refused.at).toISOString() } : null,
    };
  }

  /** Running workers whose configuration is not the primary's current one. */
  behind(): number {
    return this.slots.filter((slot) => slot.running && slot.config?.sequence !== this.current.sequence).length;
  }

  private count(): void {
    workersConfigBehind.set(this.behind());
  }
}
