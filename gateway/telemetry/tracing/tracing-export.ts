import type { Context } from '@opentelemetry/api';
import { TraceFlags } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, Span, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace';
import { Counter } from 'prom-client';
import { LogRateLimit } from '../../../src/log-rate-limit.ts';
import { componentLogger } from '../../../src/logger.ts';
import { metricsRegistry } from '../../../src/metrics.ts';

const dropped = new Counter({
  name: 'switchboard_tracing_spans_dropped_total',
  help: 'Spans not exported: the export queue was full (queue-full), or the collector refused or could not be reached (export-failed).',
  labelNames: ['reason'] as const,
  registers: [metricsRegistry],
});
const exported = new Counter({
  name: 'switchboard_tracing_spans_exported_total',
  help: 'Spans the OTLP collector accepted.',
  registers: [metricsRegistry],
});

/** At most one warning about failing exports per this period: a collector that is down must not flood the log. */
const WARN_EVERY_MS = 30_000;

/**
 * The export side of tracing, between the SDK's batch processor and the OTLP exporter: it bounds
 * the queue itself so that it can count what it drops (the SDK's processor drops silently), and
 * counts what the collector accepted or what was lost with a failed export.
 */
export class CountedExport {
  /** Finished sampled spans handed to the batch processor and not yet taken by an export. */
  private queued = 0;
  private readonly warnings = new LogRateLimit(WARN_EVERY_MS);
  private readonly log = componentLogger('tracing');

  constructor(private readonly maxQueueSize: number) {}

  /** Wraps the batch processor: a sampled span beyond the queue bound is dropped and counted, never queued. */
  processor(inner: SpanProcessor): SpanProcessor {
    return {
      onStart: (span: Span, context: Context) => inner.onStart(span, context),
      onEnd: (span: ReadableSpan) => {
        if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
        if (this.queued >= this.maxQueueSize) {
          dropped.inc({ reason: 'queue-full' });
          return;
        }
        this.queued += 1;
        inner.onEnd(span);
      },
      forceFlush: () => inner.forceFlush(),
      shutdown: () => inner.shutdown(),
    };
  }

  /** Wraps the exporter: each batch leaves the queue when its export starts and is counted when it ends. */
  exporter(inner: SpanExporter): SpanExporter {
    return {
      export: (spans: ReadableSpan[], done: (result: ExportResult) => void) => {
        this.queued = Math.max(0, this.queued - spans.length);
        inner.export(spans, (result) => {
          if (result.code === ExportResultCode.SUCCESS) exported.inc(spans.length);
          else this.failed(spans.length, result.error);
          done(result);
        });
      },
      shutdown: () => inner.shutdown(),
      ...(inner.forceFlush ? { forceFlush: () => inner.forceFlush!() } : {}),
    };
  }

  private failed(count: number, error: Error | undefined): void {
    dropped.inc({ reason: 'export-failed' }, count);
    if (!this.warnings.allow('export')) return;
    this.log.warn({ spans: count, reason: error?.message }, 'trace export failed; the spans are dropped (requests are not affected)');
  }
}
