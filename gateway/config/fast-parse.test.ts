import { isDeepStrictEqual } from 'node:util';
import { parseDocument } from 'yaml';
import { describe, expect, it } from 'vitest';
import { benchConfigText } from '../../bench/router/routes.ts';
import { MAX_ALIAS_COUNT, parseFast } from './fast-parse.ts';
import type { GatewayConfigError} from './load.ts';
import { parseConfig } from './load.ts';

/** What the `yaml` path reads: the content, or the first error. */
function readByYaml(text: string): { content: unknown } | { error: string } {
  const document = parseDocument(text, { merge: true, uniqueKeys: true, prettyErrors: false });
  if (document.errors.length > 0) return { error: document.errors[0]!.message };
  try {
    return { content: document.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

/** Scalars and documents where js-yaml and `yaml` were found to disagree, or come close. */
const SCALARS = ['1', '-1', '+1', '012', '0o17', '0x1F', '0b101', '1_000', '1.5', '.5', '-.5', '+.5', '1.', '1e3', '-0', '+0', '-0.0', '.inf', '-.inf', '.nan', '.NaN', 'true', 'True', 'TRUE', 'yes', 'no', 'on', 'off', 'y', 'null', 'Null', '~', '', '2001-12-14', '12:30', '!!binary aGVsbG8=', '!!set {a}', '!!timestamp 2001-12-14', '!!str 1', '!!float 1', '!foo x', '"\\x41"', '"\\/"', '"\\N"', "'it''s'", '<<', '0b1_0', '0x_1', '1__0'];
const DOCUMENTS = [
  'null: a', '~: a', ': a', '[1, 2]: a', '{a: 1}: a', '? [a]\n: 1', 'a : b',
  'a: "x\ny"', 'a: "x\nb: y"', "a: 'x\nb: y'", 'a: {b: "}",\nc: 2}', 'a: [1,\n2]', 'a: [1, # ]\n2]', 'a: {b: 1,\n  c: 2}', 'a: {b: 1,\nc: 2}', 'a: "a\\\nb"', 'a: x\ny', 'a:\n  b: 1\n c: 2',
  '%YAML 1.1\n---\na: yes', 'a: 1\n---\nb: 2', 'a: 1\na: 2', '{"a": 1, "a": 2}', '{\n"a": [1,\n2]\n}',
  'a: &x {b: 1}\nc: {<<: *x, d: 2}', 'a: &x {b: 1}\nc: {b: 3, <<: *x}', 'a: &x {b: 1}\nc: {<<: *x, b: 3}', 'a: &x {b: 1}\ny: &y {e: 1}\nc: {<<: [*x, *y], d: 2}',
  'c: {<<: 1}', 'a: &x [1]\nc: {<<: *x}', 'a: &x {b: 1}\nc: {<<: *x, <<: *x}', 'a: *nowhere', 'a: &a 1\na2: &a 2\nb: *a',
  'a: 1\r\nb:\r\n  c: 2\r\n', '\ufeffa: 1', 'a: |\n  x\n   y\n', 'a: >-\n  x\n  y\n', 'a:\n- 1\n- 2', '- a\n- b', 'a: b: c',
];

describe('parseFast', () => {
  it.each([...SCALARS.map((scalar) => `v: ${scalar}\n`), ...SCALARS.map((scalar) => `{"v": ${scalar || '""'}}`), ...DOCUMENTS])(
    'reads %j as `yaml` does, or leaves it to `yaml`',
    (text) => {
      const fast = parseFast(text);
      if (fast === undefined) return;
      const slow = readByYaml(text);
      // A wrong fast path either accepts text that `yaml` refuses, or reads another value (key order included).
      expect(slow).not.toHaveProperty('error');
      expect(isDeepStrictEqual(fast.content, (slow as { content: unknown }).content)).toBe(true);
      expect(JSON.stringify(fast.content)).toBe(JSON.stringify((slow as { content: unknown }).content));
    },
  );

  it('takes the fast path for plain YAML, JSON, merge keys and the 10,000-route benchmark file', () => {
    // Without this, a fast path that never answers would pass every agreement test above.
    for (const text of [benchConfigText(), 'listen: 8080\nroutes:\n  - { path: /a, service: a }\n', '{"routes": [{"path": "/a", "service": "a"}]}', 'x-c: &c { stripPrefix: true }\nroutes:\n  - { <<: *c, path: /a, service: a }\n', '']) {
      expect(parseFast(text), text.slice(0, 60)).toBeDefined();
    }
  });

  it('reads the 10,000-route benchmark file as `yaml` does', { timeout: 30_000 }, () => {
    // The reader is all that the fast path and the `yaml` path do differently (the schema and defaults
    // after it are one code), so the contents are compared, as above; comparing whole configurations
    // added two schema passes over 10,000 routes and a deep compare of their results.
    // `yaml` reading the file is most of what is left: on 2 cores at load 11 to 12 the test takes 7 to
    // 9 s (it took 11 to 14 s, past the 10 s default), hence the timeout.
    const text = benchConfigText();
    const fast = parseFast(text);
    expect(fast).toBeDefined();
    const slow = readByYaml(text);
    expect(slow).not.toHaveProperty('error');
    expect(isDeepStrictEqual(fast!.content, (slow as { content: unknown }).content)).toBe(true);
  });
});

describe('parseConfig where the fast reader would differ', () => {
  it.each([
    ['-.5', '-0.5'],
    ['0b101', '0b101'],
    ['-0', '0'],
  ])('reads header value %s as YAML 1.2 does (%s)', (value, expected) => {
    const config = parseConfig('g.yaml', `routes:\n  - { path: /a, service: a, headers: { x-v: ${value} } }\n`);
    expect(config.routes[0]!.headers).toEqual({ 'x-v': expected });
  });

  it('reads %YAML 1.1 files by YAML 1.1 rules', () => {
    expect(parseConfig('g.yaml', '%YAML 1.1\n---\naccessLog: no\n').accessLog).toBe(false);
  });

  it('refuses a flow collection continued at column 0, which js-yaml would accept', () => {
    expect(() => parseConfig('/etc/sb/g.yaml', 'routes: [{ path: /a,\nservice: a }]\n')).toThrow(/^\/etc\/sb\/g\.yaml: line 2: not valid YAML or JSON/);
  });

  it('refuses an anchor expanded beyond the alias limit, which js-yaml would accept', () => {
    const uses = Array.from({ length: MAX_ALIAS_COUNT + 1 }, (_, index) => `  - { <<: *c, path: /r${index}, service: a }`).join('\n');
    expect(() => parseConfig('g.yaml', `x-c: &c { stripPrefix: true }\nroutes:\n${uses}\n`)).toThrow(/g\.yaml: \(root\): Excessive alias count/);
    const fewer = Array.from({ length: 300 }, (_, index) => `  - { <<: *c, path: /r${index}, service: a }`).join('\n');
    expect(parseConfig('g.yaml', `x-c: &c { stripPrefix: true }\nroutes:\n${fewer}\n`).routes[299]).toMatchObject({ path: '/r299', stripPrefix: true });
  });

  it('names the line of a duplicate key in JSON, which JSON.parse would take silently', () => {
    const error = (() => {
      try {
        parseConfig('g.json', '{\n  "listen": 1,\n  "listen": 2\n}');
      } catch (caught) {
        return caught as GatewayConfigError;
      }
      throw new Error('accepted');
    })();
    expect(error.message).toBe('g.json: line 3: not valid YAML or JSON: Map keys must be unique');
  });
});
