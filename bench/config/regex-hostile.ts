// Part of `npm run bench:regex-check`: V8's time for route regexes on a hostile path, beside the
// check's verdict, for the shapes the check lets through as bounded (an ambiguous repetition with a
// small maximum) or with a lookaround inside a repetition, and for the ones it keeps refusing. A
// hostile path is the default `limits.maxHeaderSize` long (16 KiB) and made to fail late, so the
// engine tries every way it has; an exponential pattern gets a short one instead (it would not end).
import { regexBacktrackingRisk } from '../../gateway/config/regex-safety.ts';
import { table } from '../lib/stats.ts';

const PATH_BYTES = 16 * 1_024;

/** `start`, then `unit` repeated up to `bytes`, then `end`: a run the pattern takes, and a mismatch. */
function hostile(unit: string, end: string, { bytes = PATH_BYTES, start = '/' } = {}): string {
  return `${start}${unit.repeat(Math.floor((bytes - start.length - end.length) / unit.length))}${end}`;
}

interface Case {
  readonly source: string;
  readonly path: string;
}

const CASES: readonly Case[] = [
  // Bounded repetitions: the example shapes; a pattern anchored and bounded throughout, at the limit
  // of its ways (65,534) and past it; the worst shapes let through otherwise (an ambiguous bounded
  // repetition of 62 ways, under the limit of 64, then a segment scanned to the end of the path and
  // back for each way, or retried from every start), and refused past it (254 and 340 ways).
  { source: String.raw`^/v(\d{1,3})/(\w{1,8})$`, path: hostile('a', '!', { start: '/v1/' }) },
  { source: String.raw`^/(?:[a-z]{2,8}-){1,3}x$`, path: hostile('ab-', '!') },
  { source: String.raw`^/(\w{1,8}-?){1,3}$`, path: hostile('a', '!') },
  { source: String.raw`^/files/(?:\d{1,4}|[a-f]{1,8}){1,4}$`, path: hostile('a', '!', { start: '/files/' }) },
  { source: String.raw`^/(?:\d{1,2}){1,15}$`, path: hostile('0', '!') },
  { source: String.raw`^/(?:\d{1,2}){1,17}$`, path: hostile('0', '!') },
  { source: String.raw`^/(?:\d{1,2}){1,5}[^/]*/x$`, path: hostile('0', '!') },
  { source: String.raw`(?:\d{1,2}){1,5}x`, path: hostile('0', '!') },
  { source: String.raw`^/(?:\d{1,2}){1,7}[^/]*/x$`, path: hostile('0', '!') },
  { source: String.raw`(?:\d{1,2}){1,7}x`, path: hostile('0', '!') },
  { source: String.raw`(?:\d{1,4}){1,4}x`, path: hostile('0', '!') },
  { source: String.raw`^/(?:\d{1,4}|[a-f]{1,8}){1,4}[^/]*/x$`, path: hostile('a', '!') },
  { source: String.raw`^/(?:\d{1,4}){1,4}(?:\d{1,4}){1,4}[^/]*/x$`, path: hostile('0', '!', { bytes: 1_024 }) },
  { source: String.raw`^/(\w{1,8}-?){1,3}[^/]*/x$`, path: hostile('a', '!') },
  { source: String.raw`^/files/(\d{1,4}|[a-f]{1,8})+$`, path: hostile('0', '!', { bytes: 30, start: '/files/' }) },
  // Lookarounds inside repetitions.
  { source: String.raw`^/(?:(?!\.\.)[^/])+$`, path: hostile('a', '/') },
  { source: String.raw`^/((?=[a-z])\w)+$`, path: hostile('a', '!') },
  { source: String.raw`^/(?:(?=[a-z])\w+)+$`, path: hostile('a', '!', { bytes: 24 }) },
  // Alternatives that match the same digit behind a lookaround, which the check reads as if absent
  // (refused: read as matching nothing, it was let through); and a lookaround that keeps them apart
  // (refused too: the check cannot tell).
  { source: String.raw`^/(?:(?=\w)\w|\d)+x$`, path: hostile('0', '!', { bytes: 22 }) },
  { source: String.raw`^/(?:(?!\d)\w|\d)+x$`, path: hostile('0', '!') },
];

const RUNS = 5;

function timeMs(pattern: RegExp, path: string): number {
  const times: number[] = [];
  for (let run = 0; run < RUNS; run += 1) {
    const started = performance.now();
    pattern.test(path);
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b)[Math.floor(RUNS / 2)]!;
}

/** The table of verdicts and V8 times (median of 5 tests of the path), as text. */
export function hostileTable(): string {
  return table(
    ['pattern', 'verdict', 'path bytes', 'V8 ms (median)'],
    CASES.map(({ source, path }) => [source, regexBacktrackingRisk(source) === undefined ? 'let through' : 'refused', String(path.length), timeMs(new RegExp(source), path).toFixed(2)]),
  );
}
