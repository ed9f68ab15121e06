/** The result of timing one operation. */
export interface Measurement {
  readonly nsPerOp: number;
  readonly iterations: number;
}

/**
 * Times `run(iterations)` so that the timed pass lasts about `targetMs`: a warm-up pass of the same
 * length first lets the JIT settle, then the iteration count is scaled from it.
 */
export function measure(targetMs: number, run: (iterations: number) => void): Measurement {
  let iterations = 1;
  // Grow until one pass takes a measurable slice, then warm up for a full target length.
  for (;;) {
    const started = performance.now();
    run(iterations);
    const elapsed = performance.now() - started;
    if (elapsed > targetMs / 20) {
      iterations = Math.max(1, Math.round((iterations * targetMs) / elapsed));
      break;
    }
    iterations *= 4;
  }
  run(iterations);
  const started = process.hrtime.bigint();
  run(iterations);
  const elapsedNs = Number(process.hrtime.bigint() - started);
  return { nsPerOp: elapsedNs / iterations, iterations };
}
