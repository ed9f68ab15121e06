import { analyse, type Report } from 'scslre';

/** Verdicts kept by source, so that a reload checks only the patterns it adds; past this many the cache starts over. */
const CACHE_LIMIT = 1_000;
const verdicts = new Map<string, string | undefined>();

/** The config key that accepts a pattern the check refuses, named as find-my-way names its own. */
export const ALLOW_UNSAFE_REGEX_KEY = 'allowUnsafeRegex';

/**
 * Why the regular expression `source` (compiled without flags, as route and rewrite patterns are)
 * can take super-linear time on some input, in words for a config error; undefined when the check
 * finds no cause, or when `source` does not compile (`regexSource` reports that). Patterns run on
 * client paths on the event loop, so one such pattern lets a single request stall the gateway
 * (measured here: `^/(a+)+$` 2.4 s on a 26-byte path, and 16 times that per 4 bytes more;
 * `^/(.*)\.(.*)$` 1.6 s and `/+$` 0.4 s on a 16 KiB path, the default `limits.maxHeaderSize`).
 *
 * The check is scslre's static analysis (the one behind eslint-plugin-regexp's
 * no-super-linear-backtracking and no-super-linear-move): a quantifier nested in a repeated one
 * (exponential), two quantifiers that can trade the same characters, and an unanchored quantifier
 * the engine retries at each start (both polynomial). It is a check, not a proof: it misses
 * ambiguity between alternatives of a repeated group (`(a|ab|b)*`), and it cannot know that a path
 * never holds a line break, so `^/(.*)/(.*)$` is refused though paths cannot exploit it. Runs when
 * configuration is parsed, never per request: about 0.1-2 ms a new pattern.
 */
export function regexBacktrackingRisk(source: string): string | undefined {
  if (verdicts.has(source)) return verdicts.get(source);
  const verdict = assess(source);
  if (verdicts.size >= CACHE_LIMIT) verdicts.clear();
  verdicts.set(source, verdict);
  return verdict;
}

function assess(source: string): string | undefined {
  try {
    new RegExp(source);
  } catch {
    return undefined;
  }
  let reports: Report[];
  try {
    reports = analyse({ source, flags: '' }, { maxReports: 1 }).reports;
  } catch (error) {
    // The analyser's parser can lag V8's syntax: a pattern it cannot read is not known to be safe.
    return `could not be checked for catastrophic backtracking (${(error as Error).message})`;
  }
  const report = reports[0];
  return report && describe(report);
}

function describe(report: Report): string {
  const run = `a run of ${JSON.stringify(report.character.pick)}`;
  switch (report.type) {
    case 'Self':
      return report.exponential
        ? `can take exponential time on a short path (ReDoS): ${report.quant.raw} repeats inside ${report.parentQuant.raw}, so ${run} can be split between the repetitions in 2^n ways before a mismatch fails; make each character match one way only`
        : `can take polynomial time (ReDoS): ${report.quant.raw} repeats inside ${report.parentQuant.raw}, so ${run} can be split between the repetitions in many ways before a mismatch fails`;
    case 'Trade':
      return `can take polynomial time in the path's length (ReDoS): ${report.startQuant.raw} and ${report.endQuant.raw} can both take ${run}, and every way of sharing it is tried before a mismatch fails; keep them from matching the same characters (such as [^/]* for a segment instead of .*)`;
    case 'Move':
      return `can take quadratic time in the path's length (ReDoS): unanchored, ${report.quant.raw} is tried again from every start inside ${run}; anchor it (^ or a literal before it)`;
  }
}
