// Request tracing (OpenTelemetry): the contract the data plane calls, and a loader that imports the
// SDK only when a configuration turns tracing on, so that start-up and requests pay nothing otherwise.
import type { IncomingHttpHeaders } from 'node:http';
import type { Instance } from '../../../src/discovery/instance.ts';
import type { TracingSettings } from '../../config/types.ts';
import type { GatewayContext } from '../../context.ts';

/** Starts the trace of each request; one per data plane (per worker with `workers`), each exporting its own spans. */
export interface RequestTracer {
  readonly settings: TracingSettings;
  /** Starts the server span of `context`'s request, continuing the client's trace (`traceparent`, else B3: `b3` or `X-B3-*`) when it sent one. */
  start(context: GatewayContext): RequestTrace;
  /** Exports what is queued (bounded by `timeoutMs`) and stops; spans started later are not exported. */
  shutdown(timeoutMs: number): Promise<void>;
}

/** The trace of one request. */
export interface RequestTrace {
  /** 32 hex digits, for the access log. */
  readonly traceId: string;
  /**
   * Starts the child span of upstream attempt `number` on `instance` and writes the propagation
   * headers of that span into `headers` (the upstream request's): `traceparent` and `tracestate`,
   * and B3 in the encoding the client used when it spoke B3.
   */
  attempt(number: number, instance: Instance, address: string, headers: IncomingHttpHeaders): AttemptTrace;
  /** Ends the server span with what the request came to (route, service, instance, attempts, status, error class). */
  end(context: GatewayContext): void;
}

/** The span of one upstream attempt. */
export interface AttemptTrace {
  /**
   * Ends it: `status` the upstream's answer (0 for none), `errorClass` the class the attempt counts
   * as against its instance (a failure, `http-5xx`, `grpc-error`), `grpcStatus` a gRPC call's status.
   */
  end(status: number, errorClass: string | undefined, grpcStatus?: number): void;
}

/** The tracer for `settings`; the OpenTelemetry SDK is imported here, on first use, into its own chunk. */
export async function loadTracer(settings: TracingSettings): Promise<RequestTracer> {
  const { createRequestTracer } = await import('./tracing-sdk.ts');
  return createRequestTracer(settings);
}

/** True when two tracing settings would build the same tracer (so a reload keeps the running one). */
export function sameTracing(a: TracingSettings | undefined, b: TracingSettings | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
