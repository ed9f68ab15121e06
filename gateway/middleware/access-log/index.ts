import type { LineSink } from '../../../src/log-pretty.ts';
import { componentLogger } from '../../../src/logger.ts';
import { afterResponse, type GatewayContext, type Middleware } from '../../context.ts';
import { accessLogDestination, type AccessLogDestination, type DestinationOptions } from './access-log-destination.ts';
import type { ListenerRefusal } from '../../entrypoints/http1-refusal.ts';
import { accessLogText, refusalLogText, tcpLogText } from './access-log-line.ts';
import type { TcpConnectionRecord } from '../../proxy/tcp-forward.ts';

export { accessLogDestination } from './access-log-destination.ts';
export type { AccessLogDestination, DestinationOptions } from './access-log-destination.ts';
export { accessLogText, refusalLogText, tcpLogText } from './access-log-line.ts';

/** Settings of the access-log middleware. */
export interface AccessLogOptions {
  /** Where lines go; `stdoutAccessLogger()` by default. */
  readonly logger?: AccessLogDestination;
  /** Query parameters never written (the names `keyAuth` and `jwtAuth` read credentials from); none by default. */
  readonly hiddenQueryParams?: readonly string[];
}

/**
 * The access log destination on stdout (operational logs go to stderr): buffered, written in
 * batches, never blocking on a slow reader (lines are dropped and counted instead, see
 * `accessLogDestination`). `destination` may also be a sink that takes each batch (`--pretty`).
 * Call `close()` on shutdown.
 */
export function createAccessLogger(destination: number | LineSink = 1, options: DestinationOptions = {}): AccessLogDestination {
  const log = componentLogger('access-log');
  return accessLogDestination(destination, {
    // Said once an episode: at its first drop, and as lines flow again, so a later episode is said too.
    onFirstDrop: (reason) => log.warn({ reason }, 'dropping access log lines (counted in switchboard_access_log_dropped_total); said again once they flow'),
    onFlowAgain: (dropped) => log.info({ dropped }, `access log lines flow again; ${dropped} dropped in this episode`),
    ...options,
  });
}

let sharedStdout: AccessLogDestination | undefined;

/** The process's one stdout destination, made on first use: every configuration's chain shares it, so reloads open nothing new. */
export function stdoutAccessLogger(): AccessLogDestination {
  sharedStdout ??= createAccessLogger();
  return sharedStdout;
}

/** One access log line, as written. */
export interface AccessLogLine {
  method: string | undefined;
  /** The client's request target (path and query), before any rewrite. */
  path: string | undefined;
  status: number;
  durationMs: number;
  /** Response body bytes sent to the client. */
  bytes: number;
  upstream: string | undefined;
  attempts: number;
  route: string | undefined;
  service: string | undefined;
  requestId: string;
  clientIp: string;
  errorClass: string | undefined;
  /** gRPC calls: `package.Service`, the method and the `grpc-status` the caller saw. */
  grpcService?: string;
  grpcMethod?: string;
  grpcStatus?: number;
  /** What a `cache` middleware did with the request: HIT, MISS, EXPIRED or BYPASS. */
  cache?: string;
  /** Present (true) when the response never finished: the client went away or the connection broke. */
  aborted?: true;
}

/**
 * Writes one JSON line per request once its response has ended (finished or closed), so status,
 * bytes and duration are final even when the proxy streams the body after `next()` settles. A
 * layer that throws is logged with error class `internal` and the error passes on.
 */
export function accessLog(options: AccessLogOptions = {}): Middleware {
  const record = accessLogRecorder(options.logger ?? stdoutAccessLogger(), options.hiddenQueryParams);
  return async function accessLog(context, next) {
    let failed = false;
    try {
      await next();
    } catch (error) {
      failed = true;
      throw error;
    } finally {
      record(context, failed);
    }
  };
}

/**
 * The access log as a step the request runner calls once the inner layers have settled, without a
 * middleware frame of its own: logs now when the response has ended, else when it closes. The
 * `hiddenQueryParams` are left out of every line, whichever layer answered (a 404, a rate limit
 * before `keyAuth`): the authentication middleware removes its credential only when it runs.
 */
export function accessLogRecorder(destination: AccessLogDestination, hiddenQueryParams: readonly string[] = []): (context: GatewayContext, failed: boolean) => void {
  // Without hidden parameters (the plain case) the line is built with no query scan at all.
  const hidden = hiddenQueryParams.length > 0 ? hiddenQueryParams : undefined;
  const logAnswered = (context: GatewayContext): void => destination.write(accessLogText(context, false, hidden));
  const logFailed = (context: GatewayContext): void => destination.write(accessLogText(context, true, hidden));
  // Once end() was called, status and bytes are final and the line is written without a listener.
  return (context, failed) => afterResponse(context.response, failed ? logFailed : logAnswered, context);
}

/**
 * The access log of the answers a listener gives by itself to bytes that fail to parse (400, 408,
 * 431): one line each, into the same destination as the requests' lines, without `hiddenQueryParams`.
 */
export function refusalLogRecorder(destination: AccessLogDestination, hiddenQueryParams: readonly string[] = []): (refusal: ListenerRefusal) => void {
  const hidden = hiddenQueryParams.length > 0 ? hiddenQueryParams : undefined;
  return (refusal) => destination.write(refusalLogText(refusal, hidden));
}

/** The access log of a tcp entry point's connections: one line each once closed (`tcpLogText`). */
export function tcpLogRecorder(destination: AccessLogDestination): (record: TcpConnectionRecord, entryPoint: string, clientAddress: string | undefined, serverName: string | undefined) => void {
  return (record, entryPoint, clientAddress, serverName) => destination.write(tcpLogText(record, entryPoint, clientAddress, serverName));
}

/** The line for a request whose response has ended, as an object (tests and tools). */
export function accessLogLine(context: GatewayContext, failed = false): AccessLogLine {
  return JSON.parse(accessLogText(context, failed)) as AccessLogLine;
}
