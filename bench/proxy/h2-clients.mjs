// Side-by-side of the two HTTP/2 upstream clients the gateway could use, against one node:http2
// h2c backend in a child process: undici H2CClient + dispatch, and node:http2 session.request.
// Usage: node bench/proxy/h2-clients.mjs [requests=20000] [concurrency=64] [rounds=3]
// Each round runs both clients alternately (this 2-core machine moves by 2x run to run), counts
// errors and checks that response trailers arrive (gRPC needs them forwarded).
import { fork } from 'node:child_process';
import { connect, constants } from 'node:http2';
import { fileURLToPath } from 'node:url';
import { H2CClient } from 'undici';

if (process.argv[2] === '--backend') {
  const { createServer } = await import('node:http2');
  const server = createServer((request, response) => {
    response.setHeader('content-type', 'text/plain');
    response.addTrailers({ 'x-checksum': 'ok' });
    response.end('hello over h2c');
  });
  server.listen(0, '127.0.0.1', () => process.send?.(server.address().port));
} else {
  const requests = Number(process.argv[2] ?? 20_000);
  const concurrency = Number(process.argv[3] ?? 64);
  const rounds = Number(process.argv[4] ?? 3);
  const backend = fork(fileURLToPath(import.meta.url), ['--backend']);
  const port = await new Promise((resolve) => backend.once('message', resolve));
  const origin = `http://127.0.0.1:${port}`;

  const undiciClient = new H2CClient(origin, { maxConcurrentStreams: 1000 });
  const undiciOnce = () =>
    new Promise((resolve) => {
      let trailer = false;
      undiciClient.dispatch(
        { path: '/', method: 'GET', headers: {} },
        {
          onRequestStart() {},
          onResponseStart() {},
          onResponseData() {},
          onResponseEnd(_controller, trailers) {
            trailer = trailers?.['x-checksum'] === 'ok';
            resolve(trailer ? 'ok' : 'no-trailer');
          },
          onResponseError(_controller, error) {
            resolve(error.code ?? error.message);
          },
        },
      );
    });

  const session = connect(origin);
  session.on('error', () => undefined);
  const nodeOnce = () =>
    new Promise((resolve) => {
      const stream = session.request({ [constants.HTTP2_HEADER_PATH]: '/', [constants.HTTP2_HEADER_METHOD]: 'GET' });
      let trailer = false;
      stream.on('trailers', (trailers) => (trailer = trailers['x-checksum'] === 'ok'));
      stream.on('data', () => undefined);
      stream.on('end', () => resolve(trailer ? 'ok' : 'no-trailer'));
      stream.on('error', (error) => resolve(error.code ?? error.message));
      stream.end();
    });

  const run = async (once) => {
    const outcomes = new Map();
    let next = 0;
    const started = performance.now();
    const worker = async () => {
      while (next < requests) {
        next += 1;
        const outcome = await once();
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    const seconds = (performance.now() - started) / 1000;
    return { rps: Math.round(requests / seconds), outcomes: Object.fromEntries(outcomes) };
  };

  await run(undiciOnce);
  await run(nodeOnce);
  console.log(`requests=${requests} concurrency=${concurrency} (h2c, one connection each)`);
  console.log('round | undici H2CClient dispatch | node:http2 request | ratio undici/node');
  for (let round = 1; round <= rounds; round += 1) {
    const a = await run(undiciOnce);
    const b = await run(nodeOnce);
    console.log(`${round} | ${a.rps} req/s ${JSON.stringify(a.outcomes)} | ${b.rps} req/s ${JSON.stringify(b.outcomes)} | ${(a.rps / b.rps).toFixed(2)}`);
  }
  await undiciClient.close();
  session.close();
  backend.kill();
}
