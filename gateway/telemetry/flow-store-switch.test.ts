import { describe, expect, it } from 'vitest';
import { MemoryFlowStore } from './flow-store.ts';
import type { FlowStore } from './flow-store.ts';
import { SwitchableFlowStore } from './flow-store-switch.ts';

const SECOND = 1_700_000_030;
const one = { requests: 1, errors: 0, bytesIn: 10, bytesOut: 20 };

/** A store that records whether it was closed and that closes only when the test says so. */
function closable(kind: FlowStore['kind']): FlowStore & { closed: boolean; finish(): void } {
  let finish = () => {};
  const store = Object.assign(new MemoryFlowStore(), {
    closed: false,
    finish: () => finish(),
  });
  Object.defineProperty(store, 'kind', { value: kind });
  store.close = () => {
    store.closed = true;
    return new Promise<void>((resolve) => (finish = resolve));
  };
  return store;
}

describe('SwitchableFlowStore', () => {
  it('sends counts to the store in use, reports its kind, and closes the one it replaces', async () => {
    const first = closable('redis');
    const second = new MemoryFlowStore();
    const store = new SwitchableFlowStore(first);
    store.add('service\u001fuser', SECOND, one);
    expect(store.kind).toBe('redis');
    const replaced = store.use(second);
    expect(first.closed).toBe(true);
    store.add('service\u001fuser', SECOND, one);
    expect(store.kind).toBe('memory');
    expect((await store.totals(SECOND)).get('service\u001fuser')?.minute.requests).toBe(1);
    expect((await first.totals(SECOND)).get('service\u001fuser')?.minute.requests).toBe(1);
    first.finish();
    await replaced;
  });

  it('closes only once the store it replaced is closed too', async () => {
    const first = closable('redis');
    const store = new SwitchableFlowStore(first);
    void store.use(new MemoryFlowStore());
    let closed = false;
    const closing = store.close().then(() => (closed = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(closed).toBe(false);
    first.finish();
    await closing;
    expect(closed).toBe(true);
  });
});
