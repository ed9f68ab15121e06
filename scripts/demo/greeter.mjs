// The demo's gRPC service: helloworld.Greeter/SayHello (grpc-js) with the standard health service,
// no .proto needed: the two one-field messages are encoded by hand (field 1, a string).
// Usage: node greeter.mjs --port <port> --name <name>
import { parseArgs } from 'node:util';
import grpc from '@grpc/grpc-js';

const { values } = parseArgs({ options: { port: { type: 'string' }, name: { type: 'string', default: 'greeter' } } });
const raw = { requestSerialize: (b) => b, requestDeserialize: (b) => b, responseSerialize: (b) => b, responseDeserialize: (b) => b };

/** The string in field 1 of a message (HelloRequest.name), '' when absent; lengths below 128 are all the demo sends. */
const field1 = (message) => (message.length >= 2 && message[0] === 0x0a ? message.subarray(2, 2 + message[1]).toString() : '');
/** A message with `text` in field 1 (HelloReply.message). */
const withField1 = (text) => {
  const bytes = Buffer.from(text).subarray(0, 127);
  return Buffer.concat([Buffer.from([0x0a, bytes.length]), bytes]);
};

const server = new grpc.Server();
server.addService(
  { SayHello: { path: '/helloworld.Greeter/SayHello', requestStream: false, responseStream: false, ...raw } },
  { SayHello: (call, callback) => callback(null, withField1(`Hello ${field1(call.request) || 'world'}, from ${values.name}`)) },
);
server.addService(
  { Check: { path: '/grpc.health.v1.Health/Check', requestStream: false, responseStream: false, ...raw } },
  // HealthCheckResponse { status: SERVING }.
  { Check: (_call, callback) => callback(null, Buffer.from([0x08, 1])) },
);
server.bindAsync(`127.0.0.1:${values.port}`, grpc.ServerCredentials.createInsecure(), (error) => {
  if (error) throw error;
  console.log(`greeter ${values.name} listening on ${values.port}`);
});
process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
