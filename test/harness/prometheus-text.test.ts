import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parsePrometheusText, PrometheusParseError, sampleValue } from './prometheus-text.ts';

describe('parsePrometheusText', () => {
  it('reads what prom-client writes, escaped label values included', async () => {
    const registry = new Registry();
    new Counter({ name: 'a_total', help: 'A.', labelNames: ['path'], registers: [registry] }).inc({ path: 'say "hi"\\\nnow' }, 2);
    new Gauge({ name: 'b', help: 'B.', registers: [registry] }).set(-1.5);
    new Histogram({ name: 'c_seconds', help: 'C.', labelNames: ['route'], buckets: [0.1, 1], registers: [registry] }).observe({ route: 'r' }, 0.5);
    const families = parsePrometheusText(await registry.metrics());
    expect([...families.keys()]).toEqual(['a_total', 'b', 'c_seconds']);
    expect(families.get('a_total')).toMatchObject({ type: 'counter', help: 'A.', samples: [{ name: 'a_total', labels: { path: 'say "hi"\\\nnow' }, value: 2 }] });
    expect(sampleValue(families, 'b')).toBe(-1.5);
    expect(sampleValue(families, 'c_seconds_bucket', { route: 'r', le: '0.1' })).toBe(0);
    expect(sampleValue(families, 'c_seconds_bucket', { route: 'r', le: '+Inf' })).toBe(1);
    expect(sampleValue(families, 'c_seconds_count', { route: 'r' })).toBe(1);
  });

  it('reads special values, timestamps and samples without HELP or TYPE', () => {
    const families = parsePrometheusText('x +Inf\ny{a="1"} NaN 1700000000000\nz -Inf\n');
    expect(sampleValue(families, 'x')).toBe(Infinity);
    expect(sampleValue(families, 'y', { a: '1' })).toBeNaN();
    expect(families.get('z')?.type).toBe('untyped');
  });

  it.each([
    ['a value that is not a number', '# TYPE a counter\na 1x\n', 'line 2: value is not a number'],
    ['a bad metric name', '# TYPE 1a counter\n', 'line 1: invalid metric name'],
    ['an unknown type', '# TYPE a countr\n', 'line 1: unknown type'],
    ['an unterminated label value', '# TYPE a counter\na{b="c} 1\n', 'line 2: invalid label'],
    ['a bad escape', '# TYPE a counter\na{b="\\t"} 1\n', 'line 2: invalid label'],
    ['a repeated label', '# TYPE a counter\na{b="1",b="2"} 1\n', 'line 2: label b repeated'],
    ['a repeated series', '# TYPE a counter\na{b="1"} 1\na{b="1"} 2\n', 'line 3: duplicate series'],
    ['a sample of another family inside a typed one', '# TYPE a counter\na 1\n# TYPE b counter\na 2\n', 'line 4: sample outside its family'],
    ['a missing value', '# TYPE a counter\na{b="1"}\n', 'line 2: expected " <value> [timestamp]"'],
    ['a histogram without +Inf', '# TYPE h histogram\nh_bucket{le="1"} 1\nh_count 1\nh_sum 1\n', 'no le="+Inf" bucket'],
    ['buckets that shrink', '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_count 1\n', 'buckets are not cumulative'],
    ['+Inf unequal to count', '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_count 1\n', 'the +Inf bucket differs from _count'],
  ])('refuses %s', (_name, text, reason) => {
    expect(() => parsePrometheusText(text)).toThrow(PrometheusParseError);
    expect(() => parsePrometheusText(text)).toThrow(reason);
  });
});
