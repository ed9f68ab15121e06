// The access log line, built as one string in a fixed field order: no intermediate object, no
// generic serialiser, and the timestamp's date-and-seconds part reused within a second. The line
// has the fields and shape pino wrote before (`level`, `time`, then the request's fields; a field
// without a value is left out), so readers and `--pretty` keep working.
import { plainIp } from '../../config/ip-range.ts';
import { LISTENER_ANSWER, type AnsweredResponse, type GatewayContext } from '../../context.ts';
import type { ListenerRefusal } from '../../entrypoints/http1-refusal.ts';
import { grpcCallOf } from '../../proxy/grpc-status.ts';
import type { TcpConnectionRecord } from '../../proxy/tcp-forward.ts';
import { STATUS_BY_CLASS, type GatewayErrorClass } from '../../proxy/upstream-error.ts';
import { authorityBounds, splitAbsoluteTarget } from '../../router/request-target.ts';
import { withoutQueryParam } from '../key-auth/index.ts';

/** Characters that make a string need JSON escaping (quotes, backslash, controls, and non-ASCII to be safe). */
// eslint-disable-next-line no-control-regex -- control characters are exactly what must be escaped
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u007f-\uffff]/;

/** A JSON string literal of `value`; plain ASCII (nearly every value) costs one regex test. */
function quote(value: string): string {
  return NEEDS_ESCAPE.test(value) ? JSON.stringify(value) : `"${value}"`;
}

let cachedSecond = -1;
let cachedPrefix = '';

/** `Date.now()` as an ISO 8601 timestamp (`2026-12-01T03:04:05.678Z`), formatting a new Date once a second. */
export function isoTime(now: number): string {
  const second = Math.floor(now / 1_000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedPrefix = new Date(second * 1_000).toISOString().slice(0, 20);
  }
  const millis = now - second * 1_000;
  return `${cachedPrefix}${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}Z`;
}

/**
 * `hundredths` (a non-negative integer) as the JSON number `hundredths / 100` prints as: the same
 * text (no trailing zeros) from two integer conversions, instead of a double-to-shortest-string
 * conversion, which cost about as much as the rest of the line's numbers together.
 */
export function hundredthsText(hundredths: number): string {
  if (!(hundredths >= 0 && hundredths <= Number.MAX_SAFE_INTEGER)) return `${hundredths / 100}`;
  const whole = Math.floor(hundredths / 100);
  const fraction = hundredths - whole * 100;
  if (fraction === 0) return `${whole}`;
  if (fraction % 10 === 0) return `${whole}.${fraction / 10}`;
  return `${whole}.${fraction < 10 ? '0' : ''}${fraction}`;
}

/** `target` without any of the `names` parameters; a target without a query is returned as it is. */
function withoutQueryParams(target: string, names: readonly string[]): string {
  if (target.indexOf('?') === -1) return target;
  let kept = target;
  for (const name of names) kept = withoutQueryParam(kept, name);
  return kept;
}

/**
 * The access log line of a request whose response has ended (or was given up), with its newline.
 * `hiddenParams` are query parameters left out of the path (credentials: an API key, a token).
 */
export function accessLogText(context: GatewayContext, failed: boolean, hiddenParams?: readonly string[]): string {
  const { request, response, outcome } = context;
  const status = outcome.status || (response.headersSent ? response.statusCode : 0);
  const durationHundredths = Math.round((performance.now() - context.startedAt) * 100);
  let line = `{"level":30,"time":"${isoTime(Date.now())}"`;
  if (request.method !== undefined) line += `,"method":${quote(request.method)}`;
  if (request.url !== undefined) line += `,"path":${quote(hiddenParams === undefined ? request.url : withoutQueryParams(request.url, hiddenParams))}`;
  line += `,"status":${status},"durationMs":${hundredthsText(durationHundredths)},"bytes":${outcome.bytesOut}`;
  if (outcome.upstream !== undefined) line += `,"upstream":${quote(outcome.upstream)}`;
  line += `,"attempts":${outcome.attempts}`;
  if (context.routeName) line += `,"route":${quote(context.routeName)}`;
  if (context.service) line += `,"service":${quote(context.service)}`;
  line += `,"requestId":${quote(context.requestId)},"clientIp":${quote(context.clientIp)}`;
  if (context.trace !== undefined) line += `,"traceId":"${context.trace.traceId}"`;
  const errorClass = outcome.errorClass ?? (failed ? 'internal' : undefined);
  if (errorClass !== undefined) line += `,"errorClass":${quote(errorClass)}`;
  // gRPC calls only (the status is recorded for them alone): service, method and grpc-status.
  if (outcome.grpcStatus !== undefined) {
    const call = grpcCallOf(context.upstream.path);
    if (call) line += `,"grpcService":${quote(call.service)},"grpcMethod":${quote(call.method)}`;
    line += `,"grpcStatus":${outcome.grpcStatus}`;
  }
  if (outcome.cacheStatus !== undefined) line += `,"cache":"${outcome.cacheStatus}"`;
  // end() not called: the client went away or the connection broke before the answer was complete
  // (not a listener's own answer in the request's place, which was whole, nor a WebSocket's 101,
  // whose answer was whole once sent and whose line is written when its tunnel closes).
  if (!response.writableEnded && status !== 101 && (response as AnsweredResponse)[LISTENER_ANSWER] === undefined) line += ',"aborted":true';
  return `${line}}\n`;
}

/**
 * A refused head's target as a request's line writes it: an absolute-form one as its origin-form
 * path and query (`http://user:secret@a.test/x?q` as `/x?q`), as the listener turns the target of
 * every request it serves (`toOriginForm`), so the userinfo a client put there is never written;
 * a refused head never got that far. Other targets (`*`, a CONNECT's `host:port`) as they are.
 */
function originFormTarget(target: string): string {
  return target.charCodeAt(0) === 47 /* / */ ? target : (splitAbsoluteTarget(target)?.path ?? withoutUserinfo(target));
}

/**
 * A target with no origin form (another scheme, an empty host, an authority) without the userinfo
 * of its authority: `ftp://alice:secret@a.test/x` as `ftp://a.test/x`, `alice:secret@a.test:443` as `a.test:443`.
 */
function withoutUserinfo(target: string): string {
  const scheme = target.indexOf('://');
  const start = scheme === -1 ? 0 : scheme + 3;
  const { host } = authorityBounds(target, start);
  return host === start ? target : target.slice(0, start) + target.slice(host);
}

/**
 * The access log line of an answer the listener gave by itself to bytes that failed to parse, in
 * the same shape as a request's line: `errorClass` is the answer's error code; no route, service,
 * upstream or request id (none was read); `method` and `path` only from a head Node parsed;
 * `durationMs` 0, as nothing timed a request the gateway never received whole.
 */
export function refusalLogText(refusal: ListenerRefusal, hiddenParams?: readonly string[]): string {
  let line = `{"level":30,"time":"${isoTime(Date.now())}"`;
  if (refusal.method !== undefined) line += `,"method":${quote(refusal.method)}`;
  if (refusal.target !== undefined) {
    const target = originFormTarget(refusal.target);
    line += `,"path":${quote(hiddenParams === undefined ? target : withoutQueryParams(target, hiddenParams))}`;
  }
  line += `,"status":${refusal.status},"durationMs":0,"bytes":${refusal.bytes},"attempts":0`;
  line += `,"clientIp":${quote(plainIp(refusal.clientAddress))},"errorClass":${quote(refusal.error)}`;
  return `${line}}\n`;
}

/**
 * The access log line of a tcp entry point's connection once it has closed (as nginx's stream
 * module, HAProxy's `tcplog` and Envoy's TCP proxy write theirs): `protocol: "tcp"` and the
 * `entryPoint`, in place of a method and path; `status` 200 for a connection that reached an
 * upstream, else the status the same failure has over HTTP (`no-instances` 503, `connect-refused`
 * 502, `connect-timeout` 504, `cancelled` 499, `drain-timeout` 503: cut at the drain deadline while
 * connecting); `durationMs` the connection's life; `bytes` what the
 * upstream sent the client and `bytesReceived` what the client sent the upstream; `serverName` the
 * TLS server name, if any.
 */
export function tcpLogText(record: TcpConnectionRecord, entryPoint: string, clientAddress: string | undefined, serverName: string | undefined): string {
  const errorClass = record.errorClass;
  const status = record.connected ? 200 : errorClass === 'drain-timeout' ? 503 : errorClass !== undefined && Object.hasOwn(STATUS_BY_CLASS, errorClass) ? STATUS_BY_CLASS[errorClass as GatewayErrorClass] : 500;
  let line = `{"level":30,"time":"${isoTime(Date.now())}","protocol":"tcp","entryPoint":${quote(entryPoint)}`;
  line += `,"status":${status},"durationMs":${hundredthsText(Math.round((performance.now() - record.startedAt) * 100))},"bytes":${record.bytes},"bytesReceived":${record.bytesReceived}`;
  if (record.upstream !== undefined) line += `,"upstream":${quote(record.upstream)}`;
  line += `,"attempts":${record.attempts},"service":${quote(record.service)}`;
  if (clientAddress !== undefined) line += `,"clientIp":${quote(plainIp(clientAddress))}`;
  if (serverName !== undefined) line += `,"serverName":${quote(serverName)}`;
  if (errorClass !== undefined) line += `,"errorClass":${quote(errorClass)}`;
  return `${line}}\n`;
}
