import { z } from 'zod';
import { count, duration, headerName, section, sentHeaderValue } from './schema-values.ts';

/** The `tracing` section: present turns OpenTelemetry tracing on (OTLP/HTTP export), absent or false leaves it off. */
export const tracingSchema = z.union(
  [
    z.literal(false),
    section({
      endpoint: z.url({ protocol: /^https?$/, error: 'expected the http(s) URL of an OTLP/HTTP traces endpoint, e.g. http://collector:4318/v1/traces' }),
      sampleRatio: z.number().min(0).max(1).optional(),
      serviceName: z.string().min(1).optional(),
      headers: z.record(headerName, sentHeaderValue).optional(),
      maxQueueSize: count(1, 1_000_000).optional(),
      maxBatchSize: count(1, 100_000).optional(),
      flushInterval: duration.optional(),
      exportTimeout: duration.optional(),
    }).refine((tracing) => (tracing.maxBatchSize ?? 0) <= (tracing.maxQueueSize ?? Number.MAX_SAFE_INTEGER), { message: 'maxBatchSize must not exceed maxQueueSize', path: ['maxBatchSize'] }),
  ],
  { error: 'expected false or { endpoint, sampleRatio, serviceName, … }' },
);

/** `tracing` as parsed, before defaults. */
export type TracingInput = z.output<typeof tracingSchema>;
