// The admin client of `npm run bench:admin`, in a process of its own so that reading megabytes of
// JSON does not delay the bench's probes: GETs `argv[2]` one after the other for `argv[3]` ms and
// prints one JSON line `{ durations, bytes }` (each call's milliseconds, the last body's size).
const [url, durationMs] = [process.argv[2], Number(process.argv[3])];
const durations = [];
let bytes = 0;
const end = performance.now() + durationMs;
while (performance.now() < end) {
  const start = performance.now();
  const response = await fetch(url, { headers: { accept: 'application/json' } });
  bytes = (await response.arrayBuffer()).byteLength;
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  durations.push(performance.now() - start);
}
process.stdout.write(`${JSON.stringify({ durations, bytes })}\n`);
