import { RegExpParser, visitRegExpAST, type AST } from '@eslint-community/regexpp';
import { JS, NFA, TooManyNodesError, getIntersectionWords, type CharSet, type Word } from 'refa';
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
 * the engine retries at each start (both polynomial); then `ambiguousRepetition`, for what scslre
 * lets through: a repeated text that splits into its repetitions in more than one way (`(a|a)*`,
 * `(\w|\d)*`, `(a|aa)*`, `(a|ab|b)*`, `(a|ab|ba)*`), unless its maximum is bounded and so are the
 * engine's tries from a start (`boundedWays`, `MAX_PATTERN_WAYS`). It is a check, not a proof: lookarounds and
 * other assertions count as absent there (a safe pattern can be refused, naming them), backreferences
 * as matching nothing (they can hide a case), a repetition too large to build (more than
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
      // \d alone, and `^/(?:(?=\w)\w|\d)+x$` passed though exponential). Backreferences still
      // match nothing.
      const { expression, maxCharacter } = parser.parseElement(node, {
        backreferences: 'disable',
        assertions: 'ignore',
        maxNodes: MAX_NODES,
      });
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
      const ways = risk === undefined ? undefined : bounded(repetition);
      verdict = ways === undefined ? risk : ways > MAX_BOUNDED_WAYS ? `${risk} (its bounds still leave ${ways === Infinity ? 'too many' : ways.toLocaleString('en-US')} ways to try from each start, past the ${MAX_BOUNDED_WAYS.toLocaleString('en-US')} the check lets through)` : undefined;
    } catch (error) {
      // Too large to build within MAX_NODES (or past MAX_ALTERNATIVE_PAIRS): left to the engine, as
      // a pattern scslre cannot judge. Any other failure is refa's, and leaves the pattern unjudged.
      if (!(error instanceof TooManyNodesError || error instanceof TooManyPairsError)) verdict = unchecked(error);
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
  return verdict;
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
 * For a repetition found ambiguous: undefined when its maximum, or one of a repetition around it,
 * is unbounded (the splits multiply with the path's length: exponential); otherwise the product of
 * `ways` of the outermost repetitions around each bounded one found so far, this one's included
 * (`(?:\d{1,4}){1,4}`: 340). Each counted once, as the engine retries what follows each of them.
 */
function boundedWays(): (repetition: AST.Quantifier) => number | undefined {
  const counted = new Set<AST.Quantifier>();
  let product = 1;
  return (repetition) => {
    let outermost = repetition;
    for (let at = repetition.parent as AST.Node | null; at; at = at.parent) {
      if (at.type === 'Quantifier') {
        if (at.max === Infinity) return undefined;
        outermost = at;
      }
    }
    if (repetition.max === Infinity) return undefined;
    if (!counted.has(outermost)) {
      counted.add(outermost);
      product *= ways(outermost);
    }
    return product;
  };
}

/**
 * How many ways the backtracking engine can leave `node` from one position, at most, each of which
 * it retries what follows from: alternatives add up, a sequence multiplies, a repetition {m,n} of
 * a body with b ways is b^m + ... + b^n, a lookaround counts its inside (it is run on each try).
 * Infinity with an unbounded repetition inside, or past any count worth refusing.
 */
function ways(node: AST.Node): number {
  switch (node.type) {
    case 'Alternative':
      return node.elements.reduce((product, element) => product * ways(element), 1);
    case 'Group':
    case 'CapturingGroup':
    case 'Pattern':
      return node.alternatives.reduce((sum, alternative) => sum + ways(alternative), 0);
    case 'Assertion':
      return node.kind === 'lookahead' || node.kind === 'lookbehind' ? node.alternatives.reduce((sum, alternative) => sum + ways(alternative), 0) : 1;
    case 'Quantifier': {
      if (node.max === Infinity) return Infinity;
      const body = ways(node.element);
      // One way each: max - min + 1 in all, not a sum counted up to a max that can be 1e9 (`[^/]{1,999999999}`).
      if (body === 1) return node.max - node.min + 1;
      let sum = 0;
      for (let count = node.min; count <= node.max && sum <= Number.MAX_SAFE_INTEGER; count += 1) sum += body ** count;
      return sum > Number.MAX_SAFE_INTEGER ? Infinity : sum;
    }
    default:
      return 1;
  }
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
  if (quantifier.min > 1) return false;
  for (let at: AST.Node = quantifier; ; ) {
    const alternative: AST.Node | null = at.parent;
    if (alternative?.type !== 'Alternative' || alternative.elements.at(-1) !== at) return false;
    const owner: AST.Node = alternative.parent;
    if (owner.type === 'Pattern') return true;
    if (owner.type !== 'Group' && owner.type !== 'CapturingGroup') return false;
    at = owner;
  }
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
