// A strict parser of the Prometheus text exposition format 0.0.4, so tests can check that /metrics
// is valid, not merely that it contains some substring.

/** One sample line: the series name (with `_bucket`, `_sum`… suffix), its labels and its value. */
export interface PrometheusSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** One metric family: the `# TYPE` name, its type and help, and its samples. */
export interface PrometheusFamily {
  readonly name: string;
  readonly type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  readonly help: string;
  readonly samples: PrometheusSample[];
}

/** A line the format does not allow; the message names the line. */
export class PrometheusParseError extends Error {}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const SUFFIXES: Readonly<Record<string, readonly string[]>> = { histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count', ''] };

/**
 * Parses exposition text into families, checking what a scraper relies on: names and label names
 * are valid, label values are correctly escaped, values are numbers (or ±Inf, NaN), a family's
 * samples follow its TYPE line and belong to it, no series repeats, and histograms have
 * cumulative buckets ending in `le="+Inf"` equal to `_count`. Throws `PrometheusParseError`.
 */
export function parsePrometheusText(text: string): Map<string, PrometheusFamily> {
  const families = new Map<string, PrometheusFamily>();
  const seen = new Set<string>();
  let current: PrometheusFamily | undefined;
  text.split('\n').forEach((line, index) => {
    const fail = (reason: string): never => {
      throw new PrometheusParseError(`line ${index + 1}: ${reason}: ${line}`);
    };
    if (line.trim() === '') return;
    const comment = /^#\s*(HELP|TYPE)\s+(\S+)\s*(.*)$/.exec(line);
    if (comment) {
      const [, kind, name, rest] = comment as unknown as [string, string, string, string];
      if (!NAME.test(name)) fail('invalid metric name');
      const family = families.get(name) ?? { name, type: 'untyped' as const, help: '', samples: [] };
      if (family.samples.length > 0) fail(`${kind} after the samples of ${name}`);
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) fail('unknown type');
        (family as { type: string }).type = rest;
      } else (family as { help: string }).help = rest;
      families.set(name, family);
      current = family;
      return;
    }
    if (line.startsWith('#')) return;
    const sample = parseSample(line, fail);
    const family = familyOf(sample.name, current, families) ?? fail('sample outside its family');
    const key = `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort())}`;
    if (seen.has(key)) fail('duplicate series');
    seen.add(key);
    family.samples.push(sample);
  });
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return families;
}

/** The value of the sample named `name` whose labels include `labels`, or undefined. */
export function sampleValue(families: ReadonlyMap<string, PrometheusFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const family of families.values()) {
    const match = family.samples.find((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value));
    if (match) return match.value;
  }
  return undefined;
}

function parseSample(line: string, fail: (reason: string) => never): PrometheusSample {
  const head = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line) ?? fail('invalid sample name');
  const name = head[1]!;
  let rest = line.slice(name.length);
  const labels: Record<string, string> = {};
  if (rest.startsWith('{')) {
    const label = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"\s*(,|\})/;
    rest = rest.slice(1);
    if (rest.startsWith('}')) rest = rest.slice(1);
    else {
      for (;;) {
        const match = label.exec(rest) ?? fail('invalid label');
        if (match[1]! in labels) fail(`label ${match[1]} repeated`);
        labels[match[1]!] = match[2]!.replace(/\\(.)/g, (_all, escaped: string) => (escaped === 'n' ? '\n' : escaped));
        rest = rest.slice(match[0].length);
        if (match[3] === '}') break;
      }
    }
  }
  const value = /^ +(\S+)(?: +(-?\d+))?\s*$/.exec(rest) ?? fail('expected " <value> [timestamp]"');
  const number = value[1] === '+Inf' ? Infinity : value[1] === '-Inf' ? -Infinity : value[1] === 'NaN' ? NaN : Number(value[1]);
  if (Number.isNaN(number) && value[1] !== 'NaN') fail('value is not a number');
  return { name, labels, value: number };
}

function familyOf(sample: string, current: PrometheusFamily | undefined, families: ReadonlyMap<string, PrometheusFamily>): PrometheusFamily | undefined {
  if (current) {
    const suffixes = SUFFIXES[current.type] ?? [''];
    if (suffixes.some((suffix) => sample === `${current.name}${suffix}`)) return current;
  }
  // A sample without HELP/TYPE lines starts an untyped family of its own.
  if (families.has(sample)) return undefined;
  const family: PrometheusFamily = { name: sample, type: 'untyped', help: '', samples: [] };
  (families as Map<string, PrometheusFamily>).set(sample, family);
  return family;
}

function checkHistogram(family: PrometheusFamily): void {
  const series = new Map<string, { buckets: Array<[number, number]>; count?: number }>();
  for (const sample of family.samples) {
    const { le, ...rest } = sample.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const entry = series.get(key) ?? { buckets: [] };
    series.set(key, entry);
    if (sample.name.endsWith('_bucket')) {
      if (le === undefined) throw new PrometheusParseError(`${family.name}: a bucket without le`);
      entry.buckets.push([le === '+Inf' ? Infinity : Number(le), sample.value]);
    } else if (sample.name.endsWith('_count')) entry.count = sample.value;
  }
  for (const [key, { buckets, count }] of series) {
    const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
    if (sorted.at(-1)?.[0] !== Infinity) throw new PrometheusParseError(`${family.name}${key}: no le="+Inf" bucket`);
    if (sorted.some(([, value], index) => index > 0 && value < sorted[index - 1]![1])) throw new PrometheusParseError(`${family.name}${key}: buckets are not cumulative`);
    if (count !== sorted.at(-1)![1]) throw new PrometheusParseError(`${family.name}${key}: the +Inf bucket differs from _count`);
  }
}
