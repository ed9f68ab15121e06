// The flow store of a gateway whose `redis:` section may change on reload: the store it holds is
// replaced, and the flow statistics that keep it (FlowStats' `store` is fixed at start) never notice.
import { RedisFlowStore } from './flow-store-redis.ts';
import type { FlowCounts } from './flow-series.ts';
import type { FlowStore, FlowTotals } from './flow-store.ts';

/** A `FlowStore` that passes every call to the store in use, which `use` replaces. */
export class SwitchableFlowStore implements FlowStore {
  private retiring: Promise<void> = Promise.resolve();

  constructor(private current: FlowStore) {}

  get kind(): FlowStore['kind'] {
    return this.current.kind;
  }

  add(key: string, second: number, counts: FlowCounts): void {
    this.current.add(key, second, counts);
  }

  totals(second: number): Promise<Map<string, FlowTotals>> {
    return this.current.totals(second);
  }

  drop(key: string): void {
    this.current.drop(key);
  }

  /**
   * Sends every later count to `next` and closes the previous store (bounded by its timeout). From
   * one Redis store to another, the counts not sent yet go to the new Redis; otherwise the previous
   * store sends them where it always did. Resolves once the previous store is closed.
   */
  use(next: FlowStore): Promise<void> {
    const previous = this.current;
    this.current = next;
    if (previous instanceof RedisFlowStore && next instanceof RedisFlowStore) previous.handOver(next);
    const closing = previous.close();
    this.retiring = Promise.all([this.retiring, closing]).then(() => undefined);
    return closing;
  }

  async close(): Promise<void> {
    await this.retiring;
    await this.current.close();
  }
}
