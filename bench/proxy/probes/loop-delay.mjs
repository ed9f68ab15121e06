// Preload (`node --import ./bench/proxy/probes/loop-delay.mjs …`): samples the event loop's delay
// every millisecond (perf_hooks.monitorEventLoopDelay, a timer: it does not keep the loop polling)
// and, on SIGUSR2, prints its percentiles and maximum since the previous SIGUSR2 to stderr.
import { writeSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const histogram = monitorEventLoopDelay({ resolution: 1 });
histogram.enable();
process.on('SIGUSR2', () => {
  const ms = (nanoseconds) => (nanoseconds / 1e6).toFixed(1);
  writeSync(2, `loop delay ms: p50 ${ms(histogram.percentile(50))} p90 ${ms(histogram.percentile(90))} p99 ${ms(histogram.percentile(99))} p99.9 ${ms(histogram.percentile(99.9))} max ${ms(histogram.max)}\n`);
  histogram.reset();
});
