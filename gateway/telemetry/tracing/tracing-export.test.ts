import { ROOT_CONTEXT, TraceFlags } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, Span, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace';
import { describe, expect, it } from 'vitest';
import { metricsRegistry } from '../../../src/metrics.ts';
import { CountedExport } from './tracing-export.ts';

/** A finished span as the processor sees it: only its sampled flag matters here. */
const span = (sampled = true) => ({ spanContext: () => ({ traceId: '1'.repeat(32), spanId: '2'.repeat(16), traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE }) }) as unknown as ReadableSpan;

async function counter(name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = (await metricsRegistry.getSingleMetric(name)?.get())?.values.find((value) => Object.entries(labels).every(([key, wanted]) => value.labels[key] === wanted));
  return metric?.value ?? 0;
}

/** A processor that only holds what it is given, and an exporter whose answers the test decides. */
function fakes() {
  const held: ReadableSpan[] = [];
  const processor: SpanProcessor = { onStart: () => undefined, onEnd: (finished) => void held.push(finished), forceFlush: async () => undefined, shutdown: async () => undefined };
  const calls: { spans: ReadableSpan[]; done: (result: ExportResult) => void }[] = [];
  const exporter: SpanExporter = { export: (spans, done) => void calls.push({ spans, done }), shutdown: async () => undefined };
  return { held, processor, calls, exporter };
}

describe('CountedExport', () => {
  it('drops and counts sampled spans beyond the queue bound, and makes room as batches leave for export', async () => {
    const counted = new CountedExport(3);
    const { held, processor, calls, exporter } = fakes();
    const bounded = counted.processor(processor);
    const wrapped = counted.exporter(exporter);
    const before = await counter('switchboard_tracing_spans_dropped_total', { reason: 'queue-full' });
    for (let index = 0; index < 5; index += 1) bounded.onEnd(span());
    bounded.onEnd(span(false));
    expect(held).toHaveLength(3);
    expect((await counter('switchboard_tracing_spans_dropped_total', { reason: 'queue-full' })) - before).toBe(2);
    wrapped.export(held.splice(0, 2), () => undefined);
    bounded.onEnd(span());
    bounded.onEnd(span());
    expect(held).toHaveLength(3);
    expect((await counter('switchboard_tracing_spans_dropped_total', { reason: 'queue-full' })) - before).toBe(2);
    expect(calls).toHaveLength(1);
    bounded.onStart({} as Span, ROOT_CONTEXT);
  });

  it('counts exported spans on success and every span of a failed export as dropped', async () => {
    const counted = new CountedExport(10);
    const { calls, exporter } = fakes();
    const wrapped = counted.exporter(exporter);
    const exportedBefore = await counter('switchboard_tracing_spans_exported_total');
    const failedBefore = await counter('switchboard_tracing_spans_dropped_total', { reason: 'export-failed' });
    const results: ExportResult[] = [];
    wrapped.export([span(), span()], (result) => results.push(result));
    wrapped.export([span(), span(), span()], (result) => results.push(result));
    calls[0]!.done({ code: ExportResultCode.SUCCESS });
    calls[1]!.done({ code: ExportResultCode.FAILED, error: new Error('connect ECONNREFUSED') });
    expect(results.map((result) => result.code)).toEqual([ExportResultCode.SUCCESS, ExportResultCode.FAILED]);
    expect((await counter('switchboard_tracing_spans_exported_total')) - exportedBefore).toBe(2);
    expect((await counter('switchboard_tracing_spans_dropped_total', { reason: 'export-failed' })) - failedBefore).toBe(3);
  });
});
