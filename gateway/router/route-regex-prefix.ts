const METACHARACTERS = new Set(['.', '*', '+', '?', '(', ')', '[', ']', '{', '}', '^', '$', '|', '\\']);
const QUANTIFIERS = new Set(['?', '*', '+', '{']);

/**
 * The literal text every string the regex matches must start with, read conservatively: after a
 * leading `^`, plain characters and escaped punctuation (`\/`, `\.`) up to the first metacharacter;
 * a character made optional or repeatable by a quantifier ends it (`+` keeps its one copy). A
 * source without `^`, or with a `|` anywhere (an alternative could start anywhere), has none (`''`).
 * Used to index regex routes by path: stopping early only makes the index try a regex more often.
 */
export function regexLiteralPrefix(source: string): string {
  if (source.charCodeAt(0) !== 94 /* ^ */ || source.includes('|')) return '';
  let literal = '';
  for (let index = 1; index < source.length; ) {
    let char = source[index]!;
    let width = 1;
    if (char === '\\') {
      const next = source[index + 1];
      // `\d`, `\w`, `\b`, `\1`, `\u…` are classes, assertions or escapes with a meaning: stop.
      if (next === undefined || /[A-Za-z0-9]/.test(next)) break;
      char = next;
      width = 2;
    } else if (METACHARACTERS.has(char)) break;
    const after = source[index + width];
    if (after !== undefined && QUANTIFIERS.has(after)) {
      if (after === '+') literal += char;
      break;
    }
    literal += char;
    index += width;
  }
  return literal;
}
