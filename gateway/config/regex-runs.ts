import { visitRegExpAST, type AST } from '@eslint-community/regexpp';
import { CharSet, JS } from 'refa';

/** The largest character of a pattern compiled without flags (UTF-16 code units). */
const MAX_CHARACTER = 0xffff;

/**
 * How many ways the backtracking engine can leave `node` from one position, at most, each of which
 * it retries what follows from: alternatives add up, a sequence multiplies, a repetition {m,n} of
 * a body with b ways is b^m + ... + b^n, a lookaround counts its inside (it is run on each try).
 * Infinity with an unbounded repetition inside, or past any count worth refusing.
 */
export function ways(node: AST.Node): number {
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
 * Consecutive elements of one sequence that can take the same characters one after another, with
 * the repetitions among them (`elements`: more than one way each) whose ways multiply: `\d{1,100}`
 * three times takes a run of digits in 100^3 ways, each of which the engine tries before a
 * mismatch after them fails, though each alone has 100. `leading`: the run an unanchored pattern
 * starts with, which the engine also tries again from every start (`\d{1,16000}x`).
 */
export interface TradingRun {
  readonly elements: readonly AST.Element[];
  readonly leading: boolean;
  /**
   * Ways the engine can go through the run from one position (`survivors` of its elements
   * multiplied, its unbounded ones left out: they add a factor of the path's length at most).
   */
  readonly tries: number;
  /**
   * Of those, the ways that reach past it, each retrying what follows: all of `tries` at the end
   * of its sequence; 1 before nothing but `$` or `\b` up to the pattern's end; when an element
   * that shares no character with the run follows it, only the ways that end where that
   * element's characters start, `endings` (`[a-z]{1,20}[a-z0-9]{0,20}/`: 420 tries, 20 past).
   */
  readonly onward: number;
  /** A character two of `elements` can both take, or the first's when they share none. */
  readonly char: number;
  /**
   * The outermost repetition around the run, if any: its ways then count instead (`survivors`,
   * in `tries` and `onward`), as each of its repetitions goes through the run again; Infinity
   * when it, or one inside it around the run, is unbounded.
   */
  readonly around?: AST.Quantifier;
}

interface Run {
  readonly elements: AST.Element[];
  chars: CharSet;
}

/**
 * The runs of `pattern` whose ways the check must count: two or more repetitions (bounded or not)
 * that share characters in one run, or one in a leading run. A run ends where an element that
 * cannot match the empty text takes no character the run before it takes: the run's text then
 * ends where the first of that element's characters is, whatever split the engine tried, so the
 * splits before it do not multiply with those after it (`[a-z]{1,8}/[a-z]{1,8}` is two runs;
 * `\d{1,8}-?\d{1,8}` one). A repetition in a run only because it can match the empty text counts
 * only when it shares characters with another (`(?:\d{1,2}){1,5}a{0,9}/` counts 62 ways,
 * `\d{1,8}a{0,9}[^/]*` 8 times 10). Not counted: a run at the end of the pattern whose elements
 * after the first can all match the empty text (`^/[\w-]{1,100}.*`): its first way through
 * succeeds, as nothing after it can fail.
 */
export function tradingRuns(pattern: AST.Pattern): TradingRun[] {
  const found: TradingRun[] = [];
  const chars = charsOf();
  const count = counter(chars);
  visitRegExpAST(pattern, {
    onAlternativeEnter(alternative) {
      const unanchored = alternative.parent.type === 'Pattern' && !(alternative.elements[0]?.type === 'Assertion' && alternative.elements[0].kind === 'start');
      const runs = runsOf(alternative, chars);
      let leading = unanchored;
      for (const [index, run] of runs.entries()) {
        const shares = (element: AST.Element): boolean => run.elements.some((other) => other !== element && !chars(other).isDisjointWith(chars(element)));
        const repetitions = run.elements.filter((element) => ways(element) > 1 && (leading || shares(element)));
        const endsThePattern = lastInPattern(run.elements.at(-1)!) && run.elements.slice(1).every(canBeEmpty);
        if ((repetitions.length >= 2 || (leading && repetitions.length === 1)) && !endsThePattern) {
          const sets = repetitions.map(chars);
          const shared = sets.flatMap((set, i) => sets.slice(i + 1).map((other) => set.commonCharacter(other))).find((char) => char !== undefined);
          const finite = (element: AST.Element): number => (count.survivors(element) === Infinity ? 1 : count.survivors(element));
          const tries = run.elements.reduce((product, element) => product * finite(element), 1);
          const last = run.elements.at(-1)!;
          const pinned = index < runs.length - 1;
          // An unbounded repetition in the run scans on for each way that reaches it: all count.
          const scans = run.elements.some((element) => count.survivors(element) === Infinity);
          const onward = scans ? tries : pinned ? (tries / finite(last)) * Math.min(finite(last), count.endings(last)) : onlyEndAssertionsAfter(last) ? 1 : tries;
          const char = shared ?? sets[0]!.ranges[0]?.min ?? 0;
          const around = outermostRepetition(alternative);
          if (around) {
            const repeated = repeatedWays(alternative, count.survivors);
            found.push({ elements: repetitions, leading, tries: repeated, onward: repeated, char, around });
          } else found.push({ elements: repetitions, leading, tries, onward: leading ? tries : onward, char });
        }
        // The starts the engine retries from reach past a run only once it needs a character.
        leading &&= run.elements.every(canBeEmpty);
      }
    },
  });
  return found;
}

/** The outermost quantifier around `node` that can repeat it (max 2 or more), if any. */
function outermostRepetition(node: AST.Node): AST.Quantifier | undefined {
  let outermost: AST.Quantifier | undefined;
  for (let at = node.parent; at; at = at.parent) if (at.type === 'Quantifier' && at.max >= 2) outermost = at;
  return outermost;
}

/** `survivors` of the outermost repetition around `node`, Infinity when one around it is unbounded. */
function repeatedWays(node: AST.Node, survivors: (node: AST.Node) => number): number {
  let outermost: AST.Quantifier | undefined;
  for (let at = node.parent; at; at = at.parent) {
    if (at.type !== 'Quantifier' || at.max < 2) continue;
    if (at.max === Infinity) return Infinity;
    outermost = at;
  }
  return outermost ? survivors(outermost) : 1;
}

/** `alternative`'s elements split into runs (assertions, which take no characters, left out). */
function runsOf(alternative: AST.Alternative, chars: (node: AST.Element) => CharSet): Run[] {
  const runs: Run[] = [];
  for (const element of alternative.elements) {
    if (element.type === 'Assertion') continue;
    const run = runs.at(-1);
    const taken = chars(element);
    if (run && (canBeEmpty(element) || !taken.isDisjointWith(run.chars))) {
      run.elements.push(element);
      run.chars = run.chars.union(taken);
    } else runs.push({ elements: [element], chars: taken });
  }
  return runs;
}

/**
 * Bounds on the engine's ways through a node from one position, finer than `ways` where runs
 * part a sequence: `survivors`, the ways it can leave the node (each retrying what follows), and
 * `endings`, how many of them at most end at one same position. `[^/]{1,255}` has 255 and 1;
 * `(?:[^/]{1,255}/){0,16}` 17 and 1, where `ways` counts 255^16 (each repetition's text ends at its
 * `/`). A sequence's runs multiply their `endings` but for the last, whose ways all leave.
 */
function counter(chars: (node: AST.Element) => CharSet): { survivors(node: AST.Node): number; endings(node: AST.Node): number } {
  const cache = new Map<AST.Node, { survivors: number; endings: number }>();
  const alternatives = (node: AST.Group | AST.CapturingGroup): { survivors: number; endings: number } =>
    node.alternatives.map(measure).reduce((sum, next) => ({ survivors: sum.survivors + next.survivors, endings: sum.endings + next.endings }), { survivors: 0, endings: 0 });
  function measure(node: AST.Node): { survivors: number; endings: number } {
    let known = cache.get(node);
    if (known) return known;
    switch (node.type) {
      case 'Alternative': {
        const runs = runsOf(node, chars).map(({ elements }) => ({
          through: elements.reduce((product, element) => product * measure(element).survivors, 1),
          ending: elements.slice(0, -1).reduce((product, element) => product * measure(element).survivors, 1) * measure(elements.at(-1)!).endings,
        }));
        const before = runs.slice(0, -1).reduce((product, run) => product * run.ending, 1);
        known = { survivors: before * (runs.at(-1)?.through ?? 1), endings: before * (runs.at(-1)?.ending ?? 1) };
        break;
      }
      case 'Group':
      case 'CapturingGroup':
        known = alternatives(node);
        break;
      case 'Quantifier': {
        const body = measure(node.element);
        const oneEnd = body.survivors === 1 && !canBeEmpty(node.element);
        if (node.max === Infinity) known = { survivors: Infinity, endings: oneEnd ? 1 : Infinity };
        else {
          let sum = body.survivors === 1 ? node.max - node.min + 1 : 0;
          for (let count = node.min; body.survivors > 1 && count <= node.max && sum <= Number.MAX_SAFE_INTEGER; count += 1) sum += body.survivors ** count;
          const survivors = sum > Number.MAX_SAFE_INTEGER ? Infinity : sum;
          known = { survivors, endings: oneEnd ? 1 : survivors };
        }
        break;
      }
      default:
        known = { survivors: 1, endings: 1 };
    }
    cache.set(node, known);
    return known;
  }
  return { survivors: (node) => measure(node).survivors, endings: (node) => measure(node).endings };
}

/** Whether only `$`, `\b` or `\B` follow `node` up to the pattern's end, so what its ways retry is a test of one position. */
function onlyEndAssertionsAfter(node: AST.Node): boolean {
  for (let at: AST.Node = node; ; ) {
    const alternative: AST.Node | null = at.parent;
    if (alternative?.type !== 'Alternative') return false;
    const after = alternative.elements.slice(alternative.elements.indexOf(at as AST.Element) + 1);
    if (!after.every((element) => element.type === 'Assertion' && (element.kind === 'end' || element.kind === 'word'))) return false;
    const owner: AST.Node = alternative.parent;
    if (owner.type === 'Pattern') return true;
    if (owner.type !== 'Group' && owner.type !== 'CapturingGroup') return false;
    at = owner;
  }
}

/** Whether `node` is last in its alternative, in groups last in theirs, up to the pattern. */
export function lastInPattern(node: AST.Node): boolean {
  for (let at: AST.Node = node; ; ) {
    const alternative: AST.Node | null = at.parent;
    if (alternative?.type !== 'Alternative' || alternative.elements.at(-1) !== at) return false;
    const owner: AST.Node = alternative.parent;
    if (owner.type === 'Pattern') return true;
    if (owner.type !== 'Group' && owner.type !== 'CapturingGroup') return false;
    at = owner;
  }
}

/** Whether `node` can match the empty text (an assertion, a backreference, `x?`, `(a|)`). */
function canBeEmpty(node: AST.Node): boolean {
  switch (node.type) {
    case 'Character':
    case 'CharacterClass':
    case 'CharacterSet':
      return false;
    case 'Quantifier':
      return node.min === 0 || canBeEmpty(node.element);
    case 'Group':
    case 'CapturingGroup':
      return node.alternatives.some((alternative) => alternative.elements.every(canBeEmpty));
    default:
      return true;
  }
}

/**
 * The characters an element can take, or more (those inside its lookarounds too), so that a run is
 * never cut short; a backreference those of its group (it repeats the group's text).
 */
function charsOf(): (node: AST.Element) => CharSet {
  const cache = new Map<AST.Node, CharSet>();
  const flags = { global: false, ignoreCase: false, multiline: false, dotAll: false, sticky: false, unicode: false } as const;
  const set = (node: AST.Element): CharSet => {
    let found = cache.get(node);
    if (!found) {
      // A backreference inside its own group reads it as taking any character.
      cache.set(node, CharSet.all(MAX_CHARACTER));
      const ranges: CharSet[] = [];
      visitRegExpAST(node, {
        onCharacterEnter(character) {
          if (character.parent.type !== 'CharacterClass' && character.parent.type !== 'CharacterClassRange') ranges.push(JS.parseCharSet(character, flags));
        },
        onCharacterClassEnter(characterClass) {
          if (!characterClass.unicodeSets) ranges.push(JS.parseCharSet(characterClass, flags));
        },
        onCharacterSetEnter(characterSet) {
          if (characterSet.parent.type !== 'CharacterClass' && characterSet.kind !== 'property') ranges.push(JS.parseCharSet(characterSet, flags));
        },
        onBackreferenceEnter({ resolved }) {
          for (const group of Array.isArray(resolved) ? resolved : [resolved]) ranges.push(set(group));
        },
      });
      found = CharSet.empty(MAX_CHARACTER).union(...ranges);
      cache.set(node, found);
    }
    return found;
  };
  return set;
}
