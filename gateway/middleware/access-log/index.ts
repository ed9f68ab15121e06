import { pino, type Logger } from 'pino';
import type { LineSink } from '../../../src/log-pretty.ts';
import type { ClientResponse, GatewayContext, Middleware } from '../../context.ts';

/** Settings of the access-log middleware. */
export interface AccessLogOptions {
  /** Where lines go; `createAccessLogger()` (stdout) by default. */
  readonly logger?: Logger;
}

/**
 * A pino logger for access lines on stdout (operational logs go to stderr), buffered in 4 KiB
 * writes so that logging does not cost a system call per request. Call `flush()` on shutdown.
 * `destination` may also be a sink that takes each line as it is written (`--pretty`).
 */
export function createAccessLogger(destination: number | string | LineSink = 1): Logger {
  const options = { base: undefined, timestamp: pino.stdTimeFunctions.isoTime };
  if (typeof destination === 'object') return pino(options, destination);
  return pino(options, pino.destination({ dest: destination, sync: false, minLength: 4_096 }));
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
  /** Present (true) when the response never finished: the client went away or the connection broke. */
  aborted?: true;
}

/**
 * Writes one JSON line per request once its response has ended (finished or closed), so status,
 * bytes and duration are final even when the proxy streams the body after `next()` settles. A
 * layer that throws is logged with error class `internal` and the error passes on.
 */
export function accessLog(options: AccessLogOptions = {}): Middleware {
  const logger = options.logger ?? createAccessLogger();
  return async function accessLog(context, next) {
    let failed = false;
    try {
      await next();
    } catch (error) {
      failed = true;
      throw error;
    } finally {
      whenEnded(context.response, () => logger.info(accessLogLine(context, failed)));
    }
  };
}

/** The line for a request whose response has ended. */
export function accessLogLine(context: GatewayContext, failed = false): AccessLogLine {
  const { request, response, outcome } = context;
  const line: AccessLogLine = {
    method: request.method,
    path: request.url,
    status: outcome.status || (response.headersSent ? response.statusCode : 0),
    durationMs: Math.round((performance.now() - context.startedAt) * 100) / 100,
    bytes: outcome.bytesOut,
    upstream: outcome.upstream,
    attempts: outcome.attempts,
    route: context.routeName || undefined,
    service: context.service || undefined,
    requestId: context.requestId,
    clientIp: context.clientIp,
    errorClass: outcome.errorClass ?? (failed ? 'internal' : undefined),
  };
  if (!response.writableFinished) line.aborted = true;
  return line;
}

function whenEnded(response: ClientResponse, callback: () => void): void {
  if (response.writableFinished || response.destroyed) callback();
  else response.once('close', callback);
}
