import { join } from 'node:path';
import grpc from '@grpc/grpc-js';
import { freePort } from './ports.ts';
import { makeTempDir, ManagedProcess } from './process.ts';
import { acceptsConnections, REPO_ROOT, type BackendProcess } from './programs.ts';
import { waitFor } from './wait.ts';

const GRPC_BACKEND_SCRIPT = join(REPO_ROOT, 'test/fixtures/backend-grpc.mjs');
const GRPCIO_BACKEND_SCRIPT = join(REPO_ROOT, 'test/fixtures/backend-grpcio.py');
/** Debian's interpreter, which has python3-grpcio; the `python3` on PATH may be another one without it. */
const SYSTEM_PYTHON = '/usr/bin/python3';

/**
 * Starts test/fixtures/backend-grpc.mjs (a real grpc-js server) on a free port of `host` (another
 * loopback address, such as 127.0.0.2, gives a second instance a host of its own) as `name`, and
 * waits until it accepts connections.
 */
export async function startGrpcBackend(name: string, host = '127.0.0.1'): Promise<BackendProcess> {
  const port = await freePort();
  const dir = await makeTempDir('sb-backend-');
  const [command, ...args] = [...grpcBackendCommand(port, name), '--host', host];
  const backend = new ManagedProcess({ name: `backend:grpc:${port}`, command: command!, args, logFile: join(dir, 'backend.log') });
  backend.start();
  await waitFor(() => acceptsConnections(port, host), { timeoutMs: 10_000, message: `gRPC backend on ${host}:${port} to listen` });
  return { port, process: backend };
}

/**
 * Starts test/fixtures/backend-grpcio.py, a plain gRPC server of grpcio (`helloworld.Greeter`,
 * which cannot read gRPC-Web), on a free port, and waits until it accepts connections.
 */
export async function startGrpcioBackend(): Promise<BackendProcess> {
  const port = await freePort();
  const dir = await makeTempDir('sb-backend-');
  const backend = new ManagedProcess({ name: `backend:grpcio:${port}`, command: SYSTEM_PYTHON, args: [GRPCIO_BACKEND_SCRIPT, String(port)], logFile: join(dir, 'backend.log') });
  backend.start();
  await waitFor(() => acceptsConnections(port), { timeoutMs: 10_000, message: `grpcio backend on 127.0.0.1:${port} to listen` });
  return { port, process: backend };
}

/** The command line that starts test/fixtures/backend-grpc.mjs (a real grpc-js server), for `switchboard-agent … -- <command>`. */
export function grpcBackendCommand(port: number, name: string): string[] {
  return [process.execPath, GRPC_BACKEND_SCRIPT, '--port', String(port), '--name', name];
}

const identity = (value: Buffer) => value;

/** A grpc-js method definition of `path` whose messages are raw bytes (no .proto), for `makeGenericClientConstructor` and `addService`. */
export const rawMethod = (path: string, requestStream: boolean, responseStream: boolean) => ({
  path,
  requestStream,
  responseStream,
  requestSerialize: identity,
  requestDeserialize: identity,
  responseSerialize: identity,
  responseDeserialize: identity,
});

/** The fixture's `test.Echo` service with raw-bytes messages (no .proto), plus a method it does not implement. */
const ECHO_SERVICE = {
  Echo: rawMethod('/test.Echo/Echo', false, false),
  Stream: rawMethod('/test.Echo/Stream', false, true),
  Collect: rawMethod('/test.Echo/Collect', true, false),
  Chat: rawMethod('/test.Echo/Chat', true, true),
  Hang: rawMethod('/test.Echo/Hang', false, false),
  Hanging: rawMethod('/test.Echo/Hanging', false, false),
  SetHealth: rawMethod('/test.Echo/SetHealth', false, false),
  Missing: rawMethod('/test.Echo/Missing', false, false),
  Unrouted: rawMethod('/nothing.Here/Call', false, false),
  NoInstance: rawMethod('/absent.Service/Call', false, false),
};

/** What a unary call ended with: the answer or the status, and the metadata both ways. */
export interface UnaryOutcome {
  readonly value?: string;
  readonly code: number;
  readonly details: string;
  readonly headers: Record<string, unknown>;
  readonly trailers: Record<string, unknown>;
}

/**
 * A grpc-js client of the fixture's service at `address` (`127.0.0.1:port`), cleartext. grpc-js
 * shares one connection per address between the clients of a process; `ownConnection` gives this
 * one a connection of its own (a local subchannel pool), so that clients can land on different workers.
 */
export function echoClient(address: string, { ownConnection = false } = {}): grpc.Client & Record<keyof typeof ECHO_SERVICE, (...args: unknown[]) => unknown> {
  const Client = grpc.makeGenericClientConstructor(ECHO_SERVICE, 'test.Echo');
  return new Client(address, grpc.credentials.createInsecure(), ownConnection ? { 'grpc.use_local_subchannel_pool': 1 } : {}) as never;
}

/** One unary call; never rejects: a failed call resolves with its status. Resolves on the call's final status, trailers included. */
export function unary(client: grpc.Client, name: keyof typeof ECHO_SERVICE, request: string, deadlineMs = 10_000): Promise<UnaryOutcome> {
  return new Promise((resolve) => {
    let headers: Record<string, unknown> = {};
    let value: string | undefined;
    const call = (client as unknown as Record<string, (...args: unknown[]) => grpc.ClientUnaryCall>)[name]!(
      Buffer.from(request),
      new grpc.Metadata(),
      { deadline: Date.now() + deadlineMs },
      (_error: grpc.ServiceError | null, answer?: Buffer) => {
        value = answer?.toString();
      },
    );
    call.on('metadata', (metadata: grpc.Metadata) => (headers = metadata.getMap()));
    call.on('status', (status: grpc.StatusObject) => {
      // The callback runs just before 'status'; let it land first.
      setImmediate(() => resolve({ ...(value !== undefined ? { value } : {}), code: status.code, details: status.details, headers, trailers: status.metadata.getMap() }));
    });
  });
}
