import type { IncomingHttpHeaders } from 'node:http';
import { defaultTextMapGetter, defaultTextMapSetter, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, TracerProvider } from '@opentelemetry/sdk-trace';
import type { Instance } from '../../../src/discovery/instance.ts';
import type { TracingSettings } from '../../config/types.ts';
import type { GatewayContext } from '../../context.ts';
import { answerStatusOf } from '../../proxy/grpc-status.ts';
import { STATUS_BY_CLASS, type GatewayErrorClass } from '../../proxy/upstream-error.ts';
import type { AttemptTrace, RequestTrace, RequestTracer } from './index.ts';
import { CountedExport } from './tracing-export.ts';

const W3C = new W3CTraceContextPropagator();
const B3 = new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER });
/** The tracer's own name (instrumentation scope). */
const SCOPE = 'switchboard-gateway';

/**
 * The OpenTelemetry SDK behind `RequestTracer`: parent-based ratio sampling (a client's sampled
 * flag is followed), a batch processor with a bounded queue, OTLP/HTTP JSON export. Contexts are
 * passed explicitly (no global context manager or provider is installed), so nothing else in the
 * process is instrumented and no async hooks run. Export happens on the processor's timer, off the
 * request path: a slow or absent collector costs requests nothing, and what it loses is counted.
 */
export function createRequestTracer(settings: TracingSettings): RequestTracer {
  const counted = new CountedExport(settings.maxQueueSize);
  const exporter = counted.exporter(new OTLPTraceExporter({ url: settings.endpoint, headers: { ...settings.headers }, timeoutMillis: settings.exportTimeoutMs }));
  const processor = counted.processor(
    new BatchSpanProcessor({
      exporter,
      // One more than our own bound: CountedExport drops (and counts) first, the SDK's silent drop never happens.
      maxQueueSize: settings.maxQueueSize + 1,
      maxExportBatchSize: settings.maxBatchSize,
      scheduledDelayMillis: settings.flushIntervalMs,
      exportTimeoutMillis: settings.exportTimeoutMs,
    }),
  );
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': settings.serviceName }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(settings.sampleRatio) }),
    spanProcessors: [processor],
  });
  const tracer = provider.getTracer(SCOPE);
  return {
    settings,
    start: (context) => new RequestSpan(tracer, context),
    async shutdown(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs).unref()));
      await Promise.race([provider.shutdown().catch(() => undefined), deadline]);
      clearTimeout(timer);
    },
  };
}

class RequestSpan implements RequestTrace {
  readonly traceId: string;
  private readonly span: Span;
  private readonly parent: Context;
  /** The client spoke B3 (and not W3C): the upstream gets `b3` too, so a B3-only service continues the trace. */
  private readonly b3: boolean;

  constructor(
    private readonly tracer: Tracer,
    context: GatewayContext,
  ) {
    const headers = context.request.headers;
    this.b3 = headers.traceparent === undefined && headers.b3 !== undefined;
    const incoming = this.b3 ? B3.extract(ROOT_CONTEXT, headers, defaultTextMapGetter) : W3C.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
    const method = context.request.method ?? 'GET';
    // Attributes only on recording spans: an unsampled request (most of them at a low ratio) builds none.
    this.span = tracer.startSpan(method, { kind: SpanKind.SERVER }, incoming);
    if (this.span.isRecording()) {
      this.span.setAttributes({
        'http.request.method': method,
        'url.path': context.upstream.path.split('?', 1)[0],
        'server.address': headers.host,
        'client.address': context.clientIp,
        'switchboard.entry_point': context.entryPoint,
        'switchboard.request_id': context.requestId,
      });
    }
    this.parent = trace.setSpan(incoming, this.span);
    this.traceId = this.span.spanContext().traceId;
  }

  attempt(number: number, instance: Instance, address: string, headers: IncomingHttpHeaders): AttemptTrace {
    const span = this.tracer.startSpan(`attempt ${number}`, { kind: SpanKind.CLIENT }, this.parent);
    const recording = span.isRecording();
    if (recording) {
      span.setAttributes({
        'switchboard.attempt': number,
        'switchboard.instance': address,
        'switchboard.instance_id': instance.id,
        'server.address': instance.host,
        'server.port': instance.port,
        'network.protocol.name': instance.protocol,
      });
    }
    const spanContext = trace.setSpan(this.parent, span);
    // A retry replaces the previous attempt's headers; a client's own tracestate is carried by the
    // context. Deleted only when present: a delete turns the header object into a slower dictionary.
    if (headers.tracestate !== undefined) delete headers.tracestate;
    W3C.inject(spanContext, headers, defaultTextMapSetter);
    if (this.b3) B3.inject(spanContext, headers, defaultTextMapSetter);
    return {
      end(status, errorClass, grpcStatus) {
        if (!recording) return span.end();
        if (status > 0) span.setAttribute('http.response.status_code', status);
        if (grpcStatus !== undefined) span.setAttribute('rpc.grpc.status_code', grpcStatus);
        if (errorClass !== undefined) {
          span.setAttribute('error.type', errorClass);
          span.setStatus({ code: SpanStatusCode.ERROR, message: errorClass });
        }
        span.end();
      },
    };
  }

  end(context: GatewayContext): void {
    const { outcome, response } = context;
    const status = outcome.status || (response.headersSent ? response.statusCode : 0);
    const span = this.span;
    if (!span.isRecording()) return span.end();
    if (context.routeName) {
      span.updateName(`${context.request.method ?? 'GET'} ${context.routeName}`);
      span.setAttribute('http.route', context.routeName);
      span.setAttribute('switchboard.route', context.routeName);
    }
    if (context.service) span.setAttribute('switchboard.service', context.service);
    if (outcome.upstream !== undefined) span.setAttribute('switchboard.instance', outcome.upstream);
    span.setAttribute('switchboard.attempts', outcome.attempts);
    if (status > 0) span.setAttribute('http.response.status_code', status);
    const grpcStatus = outcome.grpcStatus;
    if (grpcStatus !== undefined) span.setAttribute('rpc.grpc.status_code', grpcStatus);
    // A gRPC call its upstream failed inside an HTTP 200 (UNAVAILABLE, INTERNAL…) is the 5xx it
    // stands for, as the metrics and the instance's health count it.
    const errorClass = outcome.errorClass ?? (grpcStatus !== undefined && answerStatusOf(status, grpcStatus) >= 500 ? 'grpc-error' : undefined);
    if (errorClass !== undefined) span.setAttribute('error.type', errorClass);
    // Server spans are errors for 5xx only (OpenTelemetry HTTP conventions): a 4xx, the gateway's
    // refusals (401, 429…) and a client that went away included, is the client's. A failure after
    // the answer began (its status already sent) is the 5xx its class stands for.
    if (status >= 500 || (errorClass !== undefined && Object.hasOwn(STATUS_BY_CLASS, errorClass) && STATUS_BY_CLASS[errorClass as GatewayErrorClass] >= 500)) {
      span.setStatus({ code: SpanStatusCode.ERROR, ...(errorClass ? { message: errorClass } : {}) });
    }
    span.end();
  }
}
