import { RegExpParser, visitRegExpAST, type AST } from '@eslint-community/regexpp';
import { JS, NFA, TooManyNodesError, getIntersectionWords, type CharSet, type Word } from 'refa';
import { analyse, type Report } from 'scslre';
import { lastInPattern, tradingRuns, ways, type TradingRun } from './regex-runs.ts';

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
 * the engine retries at each start (both polynomial); then `ambiguousRepetition`, for what scslre
 * lets through: a repeated text that splits into its repetitions in more than one way (`(a|a)*`,
 * `(\w|\d)*`, `(a|aa)*`, `(a|ab|b)*`, `(a|ab|ba)*`), unless its maximum is bounded and so are the
 * engine's tries from a start (`boundedWays`, `MAX_PATTERN_WAYS`); and repetitions that take the
 * same characters one after another, whose ways multiply though scslre skips any with a bounded
 * maximum (`tradingRuns`: `\d{1,100}\d{1,100}\d{1,100}[^/]*`, 100^3 ways). It is a check, not a proof: lookarounds and
 * other assertions count as absent there (a safe pattern can be refused, naming them), a repeated
 * backreference refa cannot read refuses the pattern, a repetition too large to build (more than
 * 2,000 nodes, or more than 10,000 pairs of alternatives to compare) is let through, a pattern the
 * check fails on otherwise is refused as not checked, and it cannot know that a path never holds a line break, so `^/(.*)/(.*)$` is refused though
 * paths cannot exploit it. Runs when configuration is parsed, never per request: a few hundred µs a
 * new pattern (`npm run bench:regex-check`).
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
  let parsed: { pattern: AST.Pattern; flags: AST.Flags };
  let reports: Report[];
  try {
    const parser = new RegExpParser();
    parsed = { pattern: parser.parsePattern(source), flags: parser.parseFlags('') };
    reports = analyse(parsed, { maxReports: 1 }).reports;
  } catch (error) {
    // The analyser's parser can lag V8's syntax: a pattern it cannot read is not known to be safe.
    return unchecked(error);
  }
  const report = reports[0];
  return report ? describe(report) : ambiguousRepetition(parsed);
}

/**
 * Nodes refa may create for one language of the check (the regex tree of a repetition's body) or for
 * one intersection of two (its product automaton), a fifth of refa's default of 10,000; past it refa
 * throws TooManyNodesError and that comparison is left unchecked.
 */
const MAX_NODES = 2_000;

/** Thrown past MAX_ALTERNATIVE_PAIRS, so that `check` treats it as a language too large to build. */
class TooManyPairsError extends Error {}

/**
 * Thrown for a repeated text holding a backreference that refa cannot replace by the texts of its
 * group (it does when they are at most 100, `(a)\1`): read as matching nothing, it could hide a
 * case (`(?:(\w{2})\1|\w{4})*`: "0000" is either), so the pattern is refused instead.
 */
class UnreadBackreferenceError extends Error {}

/** The verdict on a pattern the check failed on: not known to be safe, so refused. */
function unchecked(error: unknown): string {
  return `could not be checked for catastrophic backtracking (${error instanceof Error ? error.message : String(error)})`;
}

/**
 * Pairs of alternatives one pattern may intersect (a group of n alternatives is n(n-1)/2 pairs, tens
 * of µs each); past it the rest are left unchecked, as a language too large to build, so that one
 * long alternation cannot hold every gateway that loads it for seconds.
 */
const MAX_ALTERNATIVE_PAIRS = 10_000;

/**
 * The check scslre lacks, as eslint-plugin-regexp's no-dupe-disjunctions makes it: a repetition
 * whose text can be split into its iterations in more than one way, which the backtracking engine
 * tries one by one before a mismatch fails (2^n ways for n characters). Checked in turn, each
 * naming the case: alternatives of a group under the repetition that match the same text
 * (`(a|a)*`, `(\w|\d)*`); a text of one iteration that is also several (`(a|aa)*`: "aa" is aa or
 * a·a; `(a|ab|b)*`); and any other text that splits two ways (`twoWaySplit`: `(a|ab|ba)*`).
 * Lookarounds and other assertions count as absent, so they can make up a case (`(?!\d)\w|\d`,
 * whose refusal names them) but never hide one; backreferences count as matching nothing, so they
 * can hide a case but never make one up.
 */
function ambiguousRepetition(parsed: { pattern: AST.Pattern; flags: AST.Flags }): string | undefined {
  if (anchoredAtStart(parsed.pattern) && ways(parsed.pattern) <= MAX_PATTERN_WAYS) return undefined;
  let parser: JS.Parser | undefined;
  const languages = new Map<AST.Node, NFA>();
  const language = (node: AST.Alternative | AST.Element): NFA => {
    let nfa = languages.get(node);
    if (!nfa) {
      parser ??= JS.Parser.fromAst(parsed);
      // Assertions are read as if absent (matching the empty text, whatever the path holds): a
      // superset of what the alternative matches, so a lookaround can make a safe pattern look
      // ambiguous but never hide an ambiguous one (read as matching nothing, `(?=\w)\w|\d` was
      // \d alone, and `^/(?:(?=\w)\w|\d)+x$` passed though exponential). A backreference refa
      // cannot replace by its group's texts refuses the pattern.
      const { expression, maxCharacter } = parseElement(parser, node);
      nfa = NFA.fromRegex(expression, { maxCharacter }, { assertions: 'ignore', unknowns: 'disable' });
      nfa.withoutEmptyWord();
      languages.set(node, nfa);
    }
    return nfa;
  };
  let verdict: string | undefined;
  let pairs = 0;
  const bounded = boundedWays();
  const check = (repetition: AST.Quantifier, found: () => string | undefined): void => {
    if (verdict !== undefined) return;
    try {
      const risk = found();
      const outermost = risk === undefined ? undefined : outermostBounded(repetition);
      const total = risk === undefined ? undefined : outermost && bounded(outermost, ways(outermost));
      verdict = total === undefined ? risk : total > MAX_BOUNDED_WAYS ? `${risk} (its bounds still leave ${total === Infinity ? 'too many' : total.toLocaleString('en-US')} ways to try from each start, past the ${MAX_BOUNDED_WAYS.toLocaleString('en-US')} the check lets through)` : undefined;
    } catch (error) {
      // Too large to build within MAX_NODES (or past MAX_ALTERNATIVE_PAIRS): left to the engine, as
      // a pattern scslre cannot judge. Any other failure is refa's, and leaves the pattern unjudged.
      if (error instanceof UnreadBackreferenceError) verdict = unreadBackreference(error.message, repetition);
      else if (!(error instanceof TooManyNodesError || error instanceof TooManyPairsError)) verdict = unchecked(error);
    }
  };
  const onGroup = (group: AST.Group | AST.CapturingGroup): void => {
    if (group.alternatives.length < 2) return;
    const repetition = repeatingAncestor(group);
    if (!repetition || endsThePattern(repetition)) return;
    check(repetition, () => {
      for (const [i, left] of group.alternatives.entries()) {
        for (const right of group.alternatives.slice(i + 1)) {
          pairs += 1;
          if (pairs > MAX_ALTERNATIVE_PAIRS) throw new TooManyPairsError();
          const word = firstCommonWord(language(left), language(right));
          if (word)
            return `can take exponential time on a short path (ReDoS): the alternatives ${left.raw} and ${right.raw} of ${group.raw} both match ${JSON.stringify(String.fromCodePoint(...word))} and repeat inside ${repetition.raw}, so each repetition can take either, 2^n ways for n repetitions before a mismatch fails; make the alternatives match different text${readAsAbsent(left, right)}`;
        }
      }
      return undefined;
    });
  };
  visitRegExpAST(parsed.pattern, {
    onGroupEnter: onGroup,
    onCapturingGroupEnter: onGroup,
    onQuantifierEnter(quantifier) {
      const body = quantifier.element;
      if (quantifier.max < 2 || (body.type !== 'Group' && body.type !== 'CapturingGroup') || endsThePattern(quantifier)) return;
      check(quantifier, () => {
        // One intersection for all alternatives: a text of one iteration that is also two or more.
        const iterations = language(body).copy();
        iterations.quantify(1, Infinity);
        const several = language(body).copy();
        several.append(iterations);
        const word = firstCommonWord(language(body), several);
        if (!word) {
          const split = twoWaySplit(language(body));
          return split && `can take exponential time on a short path (ReDoS): ${JSON.stringify(split)} splits into repetitions of ${quantifier.raw} in more than one way, so a run of ${JSON.stringify(split)} can be split between the repetitions in 2^n ways before a mismatch fails; make each text match one way only${readAsAbsent(body)}`;
        }
        const whole = body.alternatives.find((alternative) => language(alternative).test(word));
        const first = body.alternatives.find((alternative) => word.some((_, end) => end > 0 && language(alternative).test(word.slice(0, end)) && iterations.test(word.slice(end))));
        const text = JSON.stringify(String.fromCodePoint(...word));
        return `can take exponential time on a short path (ReDoS): ${text} can be one repetition of ${quantifier.raw} (${whole?.raw}) or several (${first?.raw}, then more), so a run of ${text} can be split between the repetitions in 2^n ways before a mismatch fails; make each text match one way only${readAsAbsent(body)}`;
      });
    },
  });
  if (verdict === undefined) for (const run of tradingRuns(parsed.pattern)) verdict ??= tradingRunRisk(run, bounded);
  return verdict;
}

/** refa's parse of `node` for `language`, a backreference it cannot replace thrown as UnreadBackreferenceError. */
function parseElement(parser: JS.Parser, node: AST.Alternative | AST.Element): JS.ParseResult {
  try {
    return parser.parseElement(node, { backreferences: 'throw', assertions: 'ignore', maxNodes: MAX_NODES });
  } catch (error) {
    if (error instanceof TooManyNodesError) throw error;
    let backreference: string | undefined;
    visitRegExpAST(node, { onBackreferenceEnter: ({ raw }) => void (backreference ??= raw) });
    if (backreference === undefined) throw error;
    throw new UnreadBackreferenceError(backreference);
  }
}

function unreadBackreference(backreference: string, repetition: AST.Quantifier): string {
  return `could not be checked for catastrophic backtracking: the backreference ${backreference} repeats inside ${repetition.raw} and can stand for more texts than the check compares (100), so it cannot tell whether a text splits between the repetitions in more than one way (exponential); repeat the group's pattern instead of the backreference, or set ${ALLOW_UNSAFE_REGEX_KEY}: true for a pattern known to be safe`;
}

/**
 * The verdict on a run of repetitions that can take the same characters (`tradingRuns`): refused
 * past MAX_PATTERN_WAYS tries from one position (each ended by a test of one character at least,
 * as a pattern bounded throughout), past MAX_BOUNDED_WAYS ways reaching past it (counted with the
 * others let through in the pattern, since each retries what follows, which can scan the rest of
 * the path), or inside an unbounded repetition (the ways multiply per repetition). Its unbounded
 * repetitions add a factor of the path's length at most, as a segment scanned again for each way
 * does in the ways budget; two of them are scslre's to judge.
 */
function tradingRunRisk(run: TradingRun, bounded: BoundedWays): string | undefined {
  const listed = run.elements.length === 1 ? run.elements[0]!.raw : `${run.elements.slice(0, -1).map(({ raw }) => raw).join(', ')} and ${run.elements.at(-1)!.raw}`;
  const text = JSON.stringify(String.fromCharCode(run.char));
  if (run.onward === Infinity)
    return `can take exponential time on a short path (ReDoS): ${listed} can take the same characters one after another and repeat inside ${run.around?.raw}, so each repetition can share a run of ${text} between them in more than one way, and the ways multiply over the repetitions before a mismatch fails; let one quantifier take the run, or keep them from matching the same characters`;
  const total = run.tries > MAX_PATTERN_WAYS ? run.tries : bounded(run.around ?? run.elements[0]!, run.onward);
  const limit = run.tries > MAX_PATTERN_WAYS ? MAX_PATTERN_WAYS : MAX_BOUNDED_WAYS;
  if (total <= limit) return undefined;
  const budget = `${total === Infinity ? 'too many' : total.toLocaleString('en-US')} ways to try from each start, past the ${limit.toLocaleString('en-US')} the check lets through`;
  if (run.leading && run.elements.length === 1)
    return `can take quadratic time in the path's length (ReDoS): unanchored, ${listed} is tried again from every start inside a run of ${text} (its bounds leave ${budget}); anchor it (^ or a literal before it) or give it a small maximum`;
  return `can take polynomial time (ReDoS): ${listed} can take the same characters one after another, so a run of ${text} can be shared between them in every way their bounds allow (${budget}), each tried before a mismatch fails; let one quantifier take the run (such as \\d+ for \\d{1,100}\\d{1,100}), keep them from matching the same characters, or give them small maxima${run.leading ? '; unanchored, it is also tried again from every start' : ''}`;
}

/**
 * Ways past which an ambiguous repetition with a bounded maximum is refused after all (unless the
 * whole pattern is bounded, `MAX_PATTERN_WAYS`): the product of `ways` of every such repetition let
 * through in one pattern. Below it the engine tries at most that many splits from a start before it
 * gives up there, so the time stays linear in the path, at most this many times a pattern's without
 * the repetition: the worst shapes measured at 62 ways (before a segment scanned to the end of the
 * path, or unanchored, on a 16 KiB hostile path) take up to about 12 ms, at 254 ways up to 57
 * (`npm run bench:regex-check`).
 */
const MAX_BOUNDED_WAYS = 64;

/**
 * Ways past which a pattern anchored at its start with no unbounded repetition is checked as any
 * other: below it the engine's work is bounded whatever the path, since it tries at most that many
 * ways of the pattern from its one start, each no longer than the pattern's longest match
 * (`^/(?:\d{1,2}){1,15}$`, 65,534 ways, takes well under a ms on a 16 KiB hostile path).
 */
const MAX_PATTERN_WAYS = 65_536;

/**
 * The outermost repetition around an ambiguous `repetition`, itself included, whose `ways` count
 * for it; undefined when it or one around it is unbounded (the splits multiply with the path's
 * length: exponential).
 */
function outermostBounded(repetition: AST.Quantifier): AST.Quantifier | undefined {
  let outermost = repetition;
  for (let at: AST.Node | null = repetition; at; at = at.parent) {
    if (at.type !== 'Quantifier') continue;
    if (at.max === Infinity) return undefined;
    outermost = at;
  }
  return outermost;
}

/**
 * Counts what the pattern lets through as bounded: given a node and its ways, the product of the
 * ways of every node counted so far (`(?:\d{1,4}){1,4}`: 340; `\d{1,8}\d{1,8}[^/]*`: 64), as the
 * engine retries what follows each of them. A node inside one already counted is not counted
 * again, and one around nodes already counted replaces them.
 */
type BoundedWays = (node: AST.Node, ways: number) => number;

function boundedWays(): BoundedWays {
  const counted = new Map<AST.Node, number>();
  const inside = (node: AST.Node, outer: AST.Node): boolean => {
    for (let at: AST.Node | null = node; at; at = at.parent) if (at === outer) return true;
    return false;
  };
  return (node, ways) => {
    if (![...counted.keys()].some((other) => inside(node, other))) {
      for (const other of counted.keys()) if (inside(other, node)) counted.delete(other);
      counted.set(node, ways);
    }
    return [...counted.values()].reduce((product, next) => product * next, 1);
  };
}

/**
 * For a verdict on text that holds assertions, which `language` reads as if absent: a note naming
 * them, since one may keep the texts apart after all (`(?!\d)\w|\d`), which only its author can
 * tell; empty otherwise.
 */
function readAsAbsent(...nodes: AST.Node[]): string {
  const assertions = new Set<string>();
  for (const node of nodes) visitRegExpAST(node, { onAssertionEnter: ({ raw }) => void assertions.add(raw) });
  if (assertions.size === 0) return '';
  return ` (the check read ${[...assertions].join(', ')} as if absent, as it reads every lookaround and assertion inside a repetition: if they keep the texts apart, the pattern is safe, and ${ALLOW_UNSAFE_REGEX_KEY}: true accepts a pattern known to be safe)`;
}

/** The shortest word both automata accept, if any (refa's lazy product: it stops at the first). */
function firstCommonWord(left: NFA, right: NFA): Word | undefined {
  for (const word of getIntersectionWords(left, right, MAX_NODES)) return word;
  return undefined;
}

/** The search past which `twoWaySplit` gives up (pairs of states of one repetition's automaton). */
const MAX_PAIRS = 20_000;

/**
 * The shortest text that two different runs of `one+` read, `one` being one repetition's automaton:
 * a run may start a new repetition wherever the current one can end. Two runs that part (one starts
 * a repetition where the other goes on, or they reach different states) and both end: the text
 * splits two ways, which one intersection misses when no repetition's text is itself several
 * (`(a|ab|ba)*`: "aba" is a·ba or ab·a). Breadth-first over pairs of states, so the text is shortest.
 */
function twoWaySplit(one: NFA): string | undefined {
  type State = NFA.Node;
  interface Step {
    readonly to: State;
    readonly chars: CharSet;
    readonly restart: boolean;
  }
  const steps = (state: State): Step[] => {
    const onward = [...state.out].map(([to, chars]) => ({ to, chars, restart: false }));
    if (!one.finals.has(state)) return onward;
    return [...onward, ...[...one.initial.out].map(([to, chars]) => ({ to, chars, restart: true }))];
  };
  interface Pair {
    readonly left: State;
    readonly right: State;
    readonly parted: boolean;
    readonly previous?: Pair;
    readonly char?: number;
  }
  const ids = new Map<State, number>();
  const id = (state: State): number => ids.get(state) ?? ids.set(state, ids.size).size - 1;
  const seen = new Set<string>();
  const queue: Pair[] = [{ left: one.initial, right: one.initial, parted: false }];
  for (let index = 0; index < queue.length && index < MAX_PAIRS; index += 1) {
    const pair = queue[index]!;
    if (pair.parted && one.finals.has(pair.left) && one.finals.has(pair.right)) {
      const chars: number[] = [];
      for (let at: Pair | undefined = pair; at?.char !== undefined; at = at.previous) chars.unshift(at.char);
      return String.fromCodePoint(...chars);
    }
    for (const left of steps(pair.left)) {
      for (const right of steps(pair.right)) {
        const chars = left.chars.intersect(right.chars);
        if (chars.isEmpty) continue;
        const parted = pair.parted || left.to !== right.to || left.restart !== right.restart;
        const key = `${id(left.to)}:${id(right.to)}:${parted}`;
        if (seen.has(key)) continue;
        seen.add(key);
        queue.push({ left: left.to, right: right.to, parted, previous: pair, char: chars.ranges[0]!.min });
      }
    }
  }
  return undefined;
}

/**
 * Whether nothing after `quantifier` can fail the match, so that the engine never backtracks into
 * its repetitions: it is last in its alternative, in groups that are last in theirs, up to the
 * pattern (`^/(?:v1|v\d)+`, a prefix route), and needs at most one repetition. A match stops at
 * the first success, so however many ways the text splits, the first is taken.
 */
function endsThePattern(quantifier: AST.Quantifier): boolean {
  return quantifier.min <= 1 && lastInPattern(quantifier);
}

/** Whether every alternative of `pattern` starts with `^`, so that the engine tries it from the path's start only. */
function anchoredAtStart(pattern: AST.Pattern): boolean {
  return pattern.alternatives.every(({ elements: [first] }) => first?.type === 'Assertion' && first.kind === 'start');
}

/** The nearest quantifier around `node` that can repeat it (max 2 or more), if any. */
function repeatingAncestor(node: AST.Node): AST.Quantifier | undefined {
  for (let parent = node.parent; parent; parent = parent.parent) {
    if (parent.type === 'Quantifier' && parent.max >= 2) return parent;
  }
  return undefined;
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
