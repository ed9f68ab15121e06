import type { IncomingHttpHeaders } from 'node:http';
import { createContextKey, defaultTextMapGetter, defaultTextMapSetter, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, ParentBasedSampler, SamplingDecision, TraceIdRatioBasedSampler, TracerProvider, type Sampler } from '@opentelemetry/sdk-trace';
import type { Instance } from '../../../src/discovery/instance.ts';
import type { TracingSettings } from '../../config/types.ts';
import type { GatewayContext } from '../../context.ts';
import { answerStatusOf } from '../../proxy/grpc-status.ts';
import { STATUS_BY_CLASS, type GatewayErrorClass } from '../../proxy/upstream-error.ts';
import type { AttemptTrace, RequestTrace, RequestTracer } from './index.ts';
import { CountedExport } from './tracing-export.ts';

const W3C = new W3CTraceContextPropagator();
/** Both extract either B3 encoding; the upstream gets the one its client used. */
const B3_SINGLE = new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER });
const B3_MULTI = new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER });
/**
 * A B3 sampling decision sent without trace ids (`b3: 0`, `X-B3-Sampled: 1`…): B3 lets a client
 * say "do not trace this" (or "trace this") without starting a trace itself. The new trace the
 * gateway starts follows it instead of `sampleRatio`.
 */
const B3_DECISION = createContextKey('switchboard B3 sampling decision');
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
    sampler: new ParentBasedSampler({ root: new B3DecisionSampler(new TraceIdRatioBasedSampler(settings.sampleRatio)) }),
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

/** The root sampler: a client's B3 decision-only header where there is one, else the ratio. */
class B3DecisionSampler implements Sampler {
  constructor(private readonly ratio: Sampler) {}

  shouldSample(...args: Parameters<Sampler['shouldSample']>): ReturnType<Sampler['shouldSample']> {
    const decision = args[0].getValue(B3_DECISION);
    if (decision === undefined) return this.ratio.shouldSample(...args);
    return { decision: decision === true ? SamplingDecision.RECORD_AND_SAMPLED : SamplingDecision.NOT_RECORD };
  }

  toString(): string {
    return `B3DecisionSampler{${this.ratio.toString()}}`;
  }
}

/**
 * How a client spoke B3, if it did (beside `traceparent` or not): `b3`, the `X-B3-*` headers, or
 * both (an OpenTelemetry SDK with the `b3` and `b3multi` propagators sends both, each rewritten).
 */
function b3EncodingOf(headers: IncomingHttpHeaders): 'single' | 'multi' | 'both' | undefined {
  const multi = headers['x-b3-traceid'] !== undefined || headers['x-b3-sampled'] !== undefined || headers['x-b3-flags'] !== undefined;
  if (headers.b3 !== undefined) return multi ? 'both' : 'single';
  return multi ? 'multi' : undefined;
}

/** The sampling decision of a B3 header that carries no trace ids (B3 allows `b3: 0|1|d` and `X-B3-Sampled`/`X-B3-Flags` alone), if any. */
function b3DecisionOf(headers: IncomingHttpHeaders, encoding: 'single' | 'multi'): boolean | undefined {
  const first = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value[0] : value)?.trim();
  if (encoding === 'single') {
    const value = first(headers.b3);
    return value === '0' ? false : value === '1' || value === 'd' ? true : undefined;
  }
  if (first(headers['x-b3-flags']) === '1') return true;
  const sampled = first(headers['x-b3-sampled'])?.toLowerCase();
  return sampled === '1' || sampled === 'true' ? true : sampled === '0' || sampled === 'false' ? false : undefined;
}

class RequestSpan implements RequestTrace {
  readonly traceId: string;
  private readonly span: Span;
  private readonly parent: Context;
  /**
   * The client spoke B3: the upstream gets B3 in the same encoding too, naming the same span as its
   * `traceparent` (a B3-only service continues the gateway's trace, never the client's stale ids).
   */
  private readonly b3: 'single' | 'multi' | 'both' | undefined;

  constructor(
    private readonly tracer: Tracer,
    context: GatewayContext,
  ) {
    const headers = context.request.headers;
    const b3 = (this.b3 = b3EncodingOf(headers));
    // A valid `traceparent` wins; B3 is read without one, or beside one that does not parse.
    let incoming = headers.traceparent === undefined ? ROOT_CONTEXT : W3C.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
    if (b3 && trace.getSpanContext(incoming) === undefined) incoming = B3_SINGLE.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
    if (b3 && trace.getSpanContext(incoming) === undefined) {
      const decision = b3DecisionOf(headers, b3 === 'multi' ? 'multi' : 'single');
      if (decision !== undefined) incoming = incoming.setValue(B3_DECISION, decision);
    }
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
    if (this.b3 === 'single' || this.b3 === 'both') B3_SINGLE.inject(spanContext, headers, defaultTextMapSetter);
    if (this.b3 === 'multi' || this.b3 === 'both') {
      // Inject writes X-B3-Flags only for a B3 debug trace: a client's flag beside a traceparent that won would stay, stale.
      if (headers['x-b3-flags'] !== undefined) delete headers['x-b3-flags'];
      B3_MULTI.inject(spanContext, headers, defaultTextMapSetter);
      // The attempt span's parent is the server span (the client's own parent id would be stale).
      headers['x-b3-parentspanid'] = this.span.spanContext().spanId;
    }
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
