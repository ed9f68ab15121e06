// Preload (`node --import ./bench/proxy/probes/old-growth.mjs …`): samples V8's old space every 5 ms
// and, on SIGUSR2, prints to stderr how much it grew since the previous SIGUSR2 (the sum of its
// increases between samples; a mark-compact's drop is not subtracted). Growth beyond what the
// scavenges promoted (--trace-gc-nvp's `promoted=`) is allocated in the old generation directly.
import { writeSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';

let last;
let growth = 0;
setInterval(() => {
  const used = getHeapSpaceStatistics().find((space) => space.space_name === 'old_space').space_used_size;
  if (last !== undefined && used > last) growth += used - last;
  last = used;
}, 5).unref();
process.on('SIGUSR2', () => {
  writeSync(2, `old space growth MB: ${(growth / 1e6).toFixed(1)}\n`);
  growth = 0;
});
