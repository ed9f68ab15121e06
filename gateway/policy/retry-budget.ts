import type { RetryBudgetSettings } from '../config/index.ts';
import { RollingWindow } from './rolling-window.ts';

const BUDGET_BUCKETS = 10;
const REQUESTS = 0;
const RETRIES = 1;

/**
 * Finagle's retry budget (also Envoy's `retry_budget` idea): over a rolling window, retries may
 * reach `percent` % of the requests plus a floor of `minRetriesPerSecond` for quiet services, so a
 * brown-out cannot turn every request into `attempts` upstream calls. No timer, no allocation.
 */
export class RetryBudget {
  private readonly window: RollingWindow;
  private readonly floor: number;

  constructor(readonly settings: RetryBudgetSettings) {
    this.window = new RollingWindow(settings.windowMs, BUDGET_BUCKETS, 2);
    this.floor = (settings.minRetriesPerSecond * settings.windowMs) / 1_000;
  }

  /** Counts a request (a first attempt) towards the budget. */
  request(nowMs: number): void {
    this.window.add(nowMs, REQUESTS);
  }

  /** Takes one retry from the budget when it has one left; false when exhausted. */
  tryRetry(nowMs: number): boolean {
    const allowed = this.floor + (this.settings.percent * this.window.total(nowMs, REQUESTS)) / 100;
    if (this.window.total(nowMs, RETRIES) + 1 > allowed) return false;
    this.window.add(nowMs, RETRIES);
    return true;
  }
}
