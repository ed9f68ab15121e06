import { demoTcpEntryPoint } from './tcp-service.ts';

/** The service the demo backends register as, and the route prefix that reaches it. */
export const DEMO_SERVICE = 'demo';

/** Path prefix of the demo's named route; `/demo/…` reaches the same service through the namespace route. */
export const DEMO_ROUTE_PREFIX = '/api/demo';

/** The gateway configuration file the demo writes (docs/configuration.md describes every key). */
export function demoGatewayConfig(options: { port: number; adminPort: number; zooKeeper: string; tcpPort: number }): string {
  return `# Written by scripts/demo.mjs; the gateway watches this file, so edits apply live.
entryPoints:
  # h2c: gRPC clients (HTTP/2 in cleartext) come in on the same port as HTTP/1.1 ones.
  web: { listen: "127.0.0.1:${options.port}", h2c: true }
${demoTcpEntryPoint(options.tcpPort)}admin: 127.0.0.1:${options.adminPort}
registries: [zk://${options.zooKeeper}/services]
services:
  ${DEMO_SERVICE}:
    balancer: weighted-round-robin
    # Fail fast: a backend that the agent is stopping should cost a retry, not a stall.
    timeouts: { connect: 500ms, headers: 5s }
routes:
  - { name: demo, path: ${DEMO_ROUTE_PREFIX}, service: ${DEMO_SERVICE}, stripPrefix: true }
  - { name: by-service-name, namespace: true }
  # The gRPC greeter: helloworld.Greeter/SayHello goes to the registry service greeter (protocol grpc).
  - { name: grpc-greeter, grpcService: helloworld.Greeter, service: greeter }
# The demo stops within seconds of Ctrl-C; a request still in flight by then may be cut.
shutdown: { drainTimeout: 2s }
`;
}
