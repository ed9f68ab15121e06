import { describe, expect, it } from 'vitest';
import { parseConfig, type GatewayConfigError } from './load.ts';

function issuesOf(text: string): string {
  try {
    parseConfig('gateway.yaml', text);
  } catch (error) {
    return (error as GatewayConfigError).message;
  }
  throw new Error('the config was accepted');
}

describe('tracing', () => {
  it('is off unless the block is present (or false)', () => {
    expect(parseConfig('gateway.yaml', 'listen: 127.0.0.1:0\n').tracing).toBeUndefined();
    expect(parseConfig('gateway.yaml', 'tracing: false\n').tracing).toBeUndefined();
  });

  it('fills in every default around the endpoint', () => {
    expect(parseConfig('gateway.yaml', 'tracing: { endpoint: "http://collector:4318/v1/traces" }\n').tracing).toEqual({
      endpoint: 'http://collector:4318/v1/traces',
      sampleRatio: 1,
      serviceName: 'switchboard',
      headers: {},
      maxQueueSize: 2048,
      maxBatchSize: 512,
      flushIntervalMs: 5_000,
      exportTimeoutMs: 10_000,
    });
    const tuned = parseConfig('gateway.yaml', 'tracing: { endpoint: "https://c/v1/traces", sampleRatio: 0.25, flushInterval: 200ms, maxQueueSize: 100, maxBatchSize: 10, headers: { x-key: s } }\n').tracing;
    expect(tuned).toMatchObject({ sampleRatio: 0.25, flushIntervalMs: 200, maxQueueSize: 100, maxBatchSize: 10, headers: { 'x-key': 's' } });
  });

  it.each([
    ['tracing: { sampleRatio: 0.5 }', 'tracing.endpoint'],
    ['tracing: { endpoint: "grpc://collector:4317" }', 'tracing.endpoint (line 1): expected the http(s) URL of an OTLP/HTTP traces endpoint'],
    ['tracing: { endpoint: "http://c/v1/traces", sampleRatio: 1.5 }', 'tracing.sampleRatio'],
    ['tracing: { endpoint: "http://c/v1/traces", maxQueueSize: 10, maxBatchSize: 20 }', 'tracing.maxBatchSize (line 1): maxBatchSize must not exceed maxQueueSize'],
    ['tracing: { endpoint: "http://c/v1/traces", sampleratio: 0.5 }', 'unknown field "sampleratio" (did you mean "sampleRatio"?)'],
    ['tracing: { endpoint: "http://c/v1/traces", headers: { x-key: "a\\r\\nx-injected: 1" } }', 'tracing.headers.x-key (line 1): must not contain CR, LF or NUL'],
    ['tracing: { endpoint: "http://c/v1/traces", headers: { authorization: "Bearer 日本" } }', 'tracing.headers.authorization (line 1): must hold only tab, printable ASCII and Latin-1 characters'],
    ['tracing: { endpoint: "http://c/v1/traces", headers: { "x key": s } }', 'tracing.headers'],
  ])('refuses %s', (text, expected) => {
    expect(issuesOf(`${text}\n`)).toContain(expected);
  });
});
