/**
 * How many admin API calls `switchboard config apply` keeps in flight. One at a time, a file of
 * thousands of routes took one gateway composition per object (each O(routes)) while the command
 * waited on it; a few at a time, the gateways take the writes that arrive together in one.
 */
export const CONFIG_CLI_CONCURRENCY = 16;

/**
 * Runs `work` on every item with at most `limit` calls in flight, and calls `report` with each
 * result in the items' order (as soon as every earlier item has reported). On the first failure no
 * further item starts; the calls in flight finish, each one that succeeded is reported (still in
 * order), and the failure is thrown. So a caller that prints in `report` prints every call made.
 */
export async function inOrderWithLimit<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>, report: (item: T, result: R) => void): Promise<void> {
  const results: ({ value: R } | undefined)[] = new Array<{ value: R } | undefined>(items.length);
  let started = 0;
  let reported = 0;
  let failure: { error: unknown } | undefined;
  const flush = () => {
    for (; reported < items.length && results[reported]; reported += 1) report(items[reported]!, results[reported]!.value);
  };
  const worker = async () => {
    while (failure === undefined && started < items.length) {
      const index = started;
      started += 1;
      try {
        results[index] = { value: await work(items[index]!) };
        if (failure === undefined) flush();
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure === undefined) return;
  results.forEach((result, index) => {
    if (result && index >= reported) report(items[index]!, result.value);
  });
  throw failure.error;
}
