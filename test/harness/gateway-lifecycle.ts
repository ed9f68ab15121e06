import { createServer as createHttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach } from 'vitest';
import { startGateway, type GatewayProcess } from './programs.ts';

/** A gateway's configuration: one service at the backend on `port`, routed at `/` (with `middlewares` if named), no admin listener. */
export function lifecycleConfigFor(port: number, middlewares = '', h2c = false): string {
  return `
${h2c ? 'entryPoints:\n  web: { listen: "127.0.0.1:{{port}}", h2c: true }' : 'listen: 127.0.0.1:{{port}}'}
admin: false
services:
  one: { instances: [127.0.0.1:${port}], outlierDetection: false }
routes:
  - { path: /, service: one${middlewares === '' ? '' : `, middlewares: [${middlewares}]`} }
`;
}

/**
 * What the gateway lifecycle files share (gateway-lifecycle*.test.ts): `gateways` killed and
 * `closers` called after each test, and `gatewayOverHeldBackend`. Call it once at the top of a file:
 * it registers that file's afterEach (the files share their worker's loaded modules, so a hook
 * registered when this module loads would belong to the first file alone).
 */
export function lifecycleFixtures() {
  const gateways: GatewayProcess[] = [];
  const closers: Array<() => void> = [];

  afterEach(async () => {
    await Promise.all(gateways.splice(0).map((gateway) => gateway.process.kill()));
    for (const close of closers.splice(0)) close();
  });

  /**
   * A gateway (`extra` appended to its configuration) in front of a real backend that records each
   * request's path and holds its response until the test answers it (`waiting`, in arrival order;
   * `held(path)`, by path).
   */
  async function gatewayOverHeldBackend(extra = '', middlewares = '', h2c = false) {
    const paths: string[] = [];
    const waiting: ServerResponse[] = [];
    const backend = createHttpServer((request, response) => {
      paths.push(request.url ?? '');
      request.resume();
      waiting.push(response);
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    closers.push(() => backend.close());
    const gateway = await startGateway(`${lifecycleConfigFor((backend.address() as AddressInfo).port, middlewares, h2c)}${extra}`);
    gateways.push(gateway);
    const held = (path: string): ServerResponse | undefined => waiting[paths.indexOf(path)];
    return { gateway, paths, waiting, held };
  }

  return { gateways, closers, gatewayOverHeldBackend };
}
