/** The demo's light traffic: started by `startTraffic`, stopped by calling the function it returns. */
export type StopTraffic = () => void;

const REQUEST_TIMEOUT_MS = 2_000;
const BAR_CAP = 8;

/**
 * Sends `requestsPerSecond` GETs to `url` and, once a second, hands `print` one line that tallies
 * which backend answered (the `name` in the fixture's JSON echo) and what failed, in `names` order.
 */
export function startTraffic(url: string, requestsPerSecond: number, names: readonly string[], print: (line: string) => void): StopTraffic {
  let tally = new Map<string, number>();
  const count = (key: string): void => void tally.set(key, (tally.get(key) ?? 0) + 1);
  const send = (): void => {
    void answerOf(url).then(count);
  };
  const sender = setInterval(send, 1_000 / requestsPerSecond);
  const reporter = setInterval(() => {
    print(tallyLine(tally, names));
    tally = new Map();
  }, 1_000);
  return () => {
    clearInterval(sender);
    clearInterval(reporter);
  };
}

/** The backend name from one answer, or a short label for what went wrong (`503`, `timeout`, `refused`). */
async function answerOf(url: string): Promise<string> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    const body = await response.text();
    if (response.status !== 200) return String(response.status);
    return (JSON.parse(body) as { name?: string }).name ?? 'unnamed';
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause;
    if ((error as Error).name === 'TimeoutError') return 'timeout';
    return cause?.code === 'ECONNREFUSED' ? 'refused' : 'error';
  }
}

/** `hh:mm:ss  backend-1 █ 1   backend-2 ██ 2   …   | 503 ×1`: backends in order, then failures. */
export function tallyLine(tally: ReadonlyMap<string, number>, names: readonly string[]): string {
  const clock = new Date().toTimeString().slice(0, 8);
  const columns = names.map((name) => {
    const answered = tally.get(name) ?? 0;
    const bar = answered === 0 ? '·' : '█'.repeat(Math.min(answered, BAR_CAP));
    return `${name} ${bar} ${answered}`.padEnd(name.length + BAR_CAP + 5);
  });
  const others = [...tally].filter(([key]) => !names.includes(key)).map(([key, times]) => `${key} ×${times}`);
  return `  ${clock}  ${columns.join(' ')}${others.length > 0 ? `| ${others.join(', ')}` : ''}`.trimEnd();
}
