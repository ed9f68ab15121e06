import { NFA } from 'refa';
import { describe, expect, it, vi } from 'vitest';
import { regexBacktrackingRisk } from './regex-safety.ts';

describe('regexBacktrackingRisk', () => {
  it.each([
    String.raw`^/api/v[0-9]+/(.*)$`,
    String.raw`^/static/.*\.(css|js)$`,
    String.raw`^/users/(?<id>\d+)$`,
    String.raw`^/(en|de|fr)(/.*)?$`,
    String.raw`^/(?:[a-z0-9-]+/)*item$`,
    String.raw`^/api/v1/(users|orders)(/[0-9a-f-]{36})?$`,
    String.raw`^/a/([^/]+)/b/([^/]+)$`,
    String.raw`^/(?!admin).*`,
    String.raw`(?<=/)v1`,
    String.raw`\.php$`,
    String.raw`^/v(\d+)/items/(\w+)$`,
    String.raw`^/(foo|bar)/.*$`,
    String.raw`^/(v1|v2)/x$`,
    String.raw`(css|js|png)$`,
    String.raw`^/(\w|\d)?$`,
    String.raw`^/(?:a|ab)*$`,
    String.raw`^/(?:\.\w+|/[a-z]+)*$`,
    String.raw`^/(a|)*$`,
    String.raw`^/(a|a){1}$`,
    String.raw`^/(?:ab|ba)*$`,
    String.raw`^/(?:[^/]+/)*x$`,
    // Last in the pattern: nothing after it can fail, so the first split is taken (linear).
    String.raw`^/(?:v1|v\d)+`,
    String.raw`^/api(/(?:[a-z]|[a-z0-9])*)`,
    String.raw`(a|ab|b)*`,
    // Bounded repetitions: the engine's tries from a start are bounded, whatever the path.
    String.raw`^/v(\d{1,3})/(\w{1,8})$`,
    String.raw`^/(?:[a-z]{2,8}-){1,3}x$`,
    // Anchored, no unbounded repetition, at most 65,536 ways of the whole pattern.
    String.raw`^/(\w{1,8}-?){1,3}$`,
    String.raw`^/files/(?:\d{1,4}|[a-f]{1,8}){1,4}$`,
    String.raw`^/(?:\d{1,2}){1,15}$`,
    // Otherwise at most 64 ways of its ambiguous bounded repetitions.
    String.raw`^/(?:\d{1,2}){1,5}[^/]*/x$`,
    String.raw`(?:\d{1,2}){1,5}x`,
    String.raw`^/(a|a){1,3}.*$`,
    // Lookarounds inside a repetition that keep it linear.
    String.raw`^/(?:(?!\.\.)[^/])+$`,
    String.raw`^/((?=[a-z])\w)+$`,
  ])('finds nothing in the common route pattern %s', (source) => {
    expect(regexBacktrackingRisk(source)).toBeUndefined();
  });

  it.each([
    [String.raw`^/(a+)+$`, 'exponential time', '(a+)+'],
    [String.raw`^/(\w+\s?)*$`, 'exponential time', '(\\w+\\s?)*'],
    [String.raw`^/([a-z0-9-]+)+/x$`, 'exponential time', '([a-z0-9-]+)+'],
    [String.raw`^/.*a.*a.*b$`, 'polynomial time', '.*'],
    [String.raw`^/(.*)\.(.*)$`, 'polynomial time', '[^/]*'],
    [String.raw`/+$`, 'quadratic time', 'anchor it'],
    [String.raw`^/(a|a)*$`, 'exponential time', 'the alternatives a and a of (a|a) both match "a" and repeat inside (a|a)*'],
    [String.raw`^/(\w|\d)*$`, 'exponential time', String.raw`the alternatives \w and \d of (\w|\d) both match "0"`],
    [String.raw`^/(?:[a-z]|[0-9a-f])+/x$`, 'exponential time', 'make the alternatives match different text'],
    [String.raw`^/(?:(a|a)b)*$`, 'exponential time', 'repeat inside (?:(a|a)b)*'],
    [String.raw`^/(a|a){2,}$`, 'exponential time', 'repeat inside (a|a){2,}'],
    [String.raw`^/(a|a){0,40}$`, 'exponential time', 'repeat inside (a|a){0,40}'],
    [String.raw`^/(a|aa)*$`, 'exponential time', '"aa" can be one repetition of (a|aa)* (aa) or several (a, then more)'],
    [String.raw`^(a|ab|b)*x`, 'exponential time', '"ab" can be one repetition of (a|ab|b)* (ab) or several (a, then more)'],
    [String.raw`^/(ab?|b)*$`, 'exponential time', 'make each text match one way only'],
    [String.raw`^/(a|ab|ba)*$`, 'exponential time', '"aba" splits into repetitions of (a|ab|ba)* in more than one way'],
    [String.raw`^/(?:ab|cd|abc|d)*$`, 'exponential time', '"abcd" splits into repetitions of (?:ab|cd|abc|d)* in more than one way'],
    // Bounded, but past 64 ways and with an unbounded part or more than one start, or past 65,536 ways.
    [String.raw`^/(?:\d{1,2}){1,7}[^/]*/x$`, 'exponential time', '(its bounds still leave 254 ways to try from each start, past the 64 the check lets through)'],
    [String.raw`(?:\d{1,4}){1,4}x`, 'exponential time', '340 ways to try from each start'],
    [String.raw`^/(\w{1,8}-?){1,3}[^/]*/x$`, 'exponential time', '4,368 ways to try from each start'],
    [String.raw`^/(?:\d{1,2}){1,17}$`, 'exponential time', '262,142 ways to try from each start'],
    [String.raw`^/(?:\d{1,2}){1,5}(?:\d{1,2}){1,5}.*$`, 'exponential time', '3,844 ways to try from each start'],
    // A bounded repetition inside an unbounded one.
    [String.raw`^/files/(\d{1,4}|[a-f]{1,8})+$`, 'exponential time', String.raw`"00" can be one repetition of (\d{1,4}|[a-f]{1,8})+`],
    [String.raw`^/(?:(?:\d{1,4}){1,4}x)*$`, 'exponential time', 'in more than one way'],
    [String.raw`^/(?:(?=[a-z])\w+)+$`, 'exponential time', String.raw`\w+ repeats inside (?:(?=[a-z])\w+)+`],
    // Lookarounds and other assertions inside a repetition are read as if absent, so they can hide no
    // case (read as matching nothing, (?=\w)\w was no alternative at all), and the refusal says so.
    [String.raw`^/(?:(?=\w)\w|\d)+x$`, 'exponential time', String.raw`both match "0" and repeat inside (?:(?=\w)\w|\d)+, so each repetition can take either, 2^n ways for n repetitions before a mismatch fails; make the alternatives match different text (the check read (?=\w) as if absent`],
    [String.raw`^/(?:(?=a)a|aa)+x$`, 'exponential time', 'make each text match one way only (the check read (?=a) as if absent'],
    [String.raw`^/(?:\b\w|\d)+x$`, 'exponential time', String.raw`(the check read \b as if absent`],
    // A lookaround that does keep the alternatives apart is refused too: the check cannot tell.
    [String.raw`^/(?:(?!\d)\w|\d)+x$`, 'exponential time', 'if they keep the texts apart, the pattern is safe, and allowUnsafeRegex: true accepts a pattern known to be safe)'],
  ])('refuses %s, saying why', (source, complexity, hint) => {
    const risk = regexBacktrackingRisk(source);
    expect(risk).toContain(complexity);
    expect(risk).toContain(hint);
  });

  it('leaves past 10,000 pairs of alternatives unchecked rather than compare them all', () => {
    // 1,502 alternatives are 1,127,251 pairs; the only shared text is the last pair's.
    const alternatives = Array.from({ length: 1_501 }, (_, i) => `x${i}`);
    expect(regexBacktrackingRisk(`^/(?:${alternatives.join('|')}|x1500)*$`)).toBeUndefined();
  });

  it('leaves a repetition too large for refa to build unchecked', () => {
    // a{1,20000} is past MAX_NODES: refa throws TooManyNodesError, which is no verdict.
    expect(regexBacktrackingRisk(String.raw`^/(?:a{1,20000}|b)*x$`)).toBeUndefined();
  });

  it('refuses a pattern the check fails on for any other reason, naming the failure', () => {
    // No pattern is known to make refa fail otherwise, so the failure is injected once.
    const fromRegex = vi.spyOn(NFA, 'fromRegex').mockImplementationOnce(() => {
      throw new TypeError('refa failed');
    });
    try {
      expect(regexBacktrackingRisk(String.raw`^/(?:ab|cd)*x$`)).toBe('could not be checked for catastrophic backtracking (refa failed)');
    } finally {
      fromRegex.mockRestore();
    }
  });

  it('counts the ways of a bounded repetition of one way without counting to its maximum', () => {
    // Counted one by one, 1e9 ways took seconds (a config load stalled): past the vitest timeout.
    expect(regexBacktrackingRisk(String.raw`^/[^/]{1,999999999}$`)).toBeUndefined();
    expect(regexBacktrackingRisk(String.raw`^/(?:\d{1,2}){1,5}a{0,999999999}[^/]*/x$`)).toBeUndefined();
  });

  it('leaves a pattern that does not compile to the syntax check', () => {
    expect(regexBacktrackingRisk('(')).toBeUndefined();
  });
});
