import { describe, expect, it } from 'vitest';
import { instanceAddress } from '../discovery/instance.ts';
import { pickedId, testInstance } from './balancer-testing.ts';
import { nonePicker, UNUSED_PICK, type PickContext, type Picker } from './picker.ts';
import { canaryPicker, cookieValue, fallbackPicker, SmoothSplit, type CanaryPlan, type PickerSource } from './picker-subset.ts';

/** A source that always picks `id`, or has nothing (`none:<reason>`); `picker` may be swapped like a balancer's. */
function source(id: string): { picker: Picker } {
  if (id.startsWith('none:')) return { picker: nonePicker(id.slice(5) as 'no-instances') };
  const instance = testInstance(id);
  const address = instanceAddress(instance);
  return { picker: { pick: () => ({ kind: 'endpoint', instance, address, done: () => undefined, answered: () => undefined, hold: () => () => undefined }), peek: () => ({ kind: 'endpoint', instance, address }) } };
}

/**
 * A source over `ids` that honours a retry's `tried` as a balancer does: the first member not tried,
 * else (every one tried) the first; the ids of picks released unused go to `released`.
 */
function members(released: string[], ...ids: string[]): PickerSource {
  const instances = ids.map((id) => testInstance(id));
  const choose = (context: PickContext) => instances.find((instance) => !context.tried?.includes(instanceAddress(instance))) ?? instances[0]!;
  return {
    picker: {
      pick: (context) => {
        const instance = choose(context);
        return { kind: 'endpoint', instance, address: instanceAddress(instance), done: (outcome) => void (outcome === UNUSED_PICK && released.push(instance.id)), answered: () => undefined, hold: () => () => undefined };
      },
      peek: (context) => ({ kind: 'endpoint', instance: choose(context), address: instanceAddress(choose(context)) }),
    },
  };
}

/** A retry's context naming the test instances `ids` as tried. */
const triedOf = (...ids: string[]): PickContext => ({ tried: ids.map((id) => instanceAddress(testInstance(id))) });

/** A 90/10 canary plan between `v1` and `v2`, no lanes or fallback unless `extra` gives them. */
const plan = (v1: PickerSource, v2: PickerSource, extra: Partial<CanaryPlan> = {}): CanaryPlan => ({
  split: [
    { weight: 90, source: v1 },
    { weight: 10, source: v2 },
  ],
  lanes: [],
  fallback: undefined,
  ...extra,
});

function counts(picks: number, picker: Picker, context: PickContext = {}): Record<string, number> {
  const seen: Record<string, number> = {};
  for (let index = 0; index < picks; index += 1) {
    const id = pickedId(picker.pick(context));
    seen[id] = (seen[id] ?? 0) + 1;
  }
  return seen;
}

describe('SmoothSplit', () => {
  it.each([
    [[90, 10], 100, [90, 10]],
    [[90, 10], 10_000, [9_000, 1_000]],
    [[1, 2, 3], 6, [1, 2, 3]],
    [[50, 0, 50], 10, [5, 0, 5]],
  ])('gives weights %j exactly their share over %i picks', (weights, picks, expected) => {
    const split = new SmoothSplit(weights);
    const seen = weights.map(() => 0);
    for (let index = 0; index < picks; index += 1) seen[split.next()]! += 1;
    expect(seen).toEqual(expected);
  });

  it('spreads the small share out instead of sending it in a burst', () => {
    const split = new SmoothSplit([90, 10]);
    const sequence = Array.from({ length: 20 }, () => split.next());
    // One canary pick in each run of ten, never two in a row.
    expect(sequence.slice(0, 10).filter((index) => index === 1)).toHaveLength(1);
    expect(sequence.slice(10).filter((index) => index === 1)).toHaveLength(1);
  });

  it('answers -1 when every weight is 0', () => {
    expect(new SmoothSplit([0, 0]).next()).toBe(-1);
  });
});

describe('fallbackPicker', () => {
  it.each([
    ['a', 'b', 'a'],
    ['none:no-instances', 'b', 'b'],
    ['none:no-healthy-instances', 'b', 'b'],
    ['none:no-instances', 'none:no-healthy-instances', 'none:no-instances'],
    ['none:no-instances', undefined, 'none:no-instances'],
  ])('with selection %s and fallback %s picks %s', (primary, fallback, expected) => {
    expect(pickedId(fallbackPicker(source(primary), fallback === undefined ? undefined : source(fallback)).pick({}))).toBe(expected);
  });

  it.each([
    [['a'], ['b'], 'b', ['a']],
    [['a', 'a2'], ['b'], 'a2', []],
    [['a'], ['a', 'b'], 'b', ['a']],
    [['a'], ['a'], 'a', ['a']],
  ])("sends a retry that tried every member of selection %j to an untried one of fallback %j, else repeats the selection's", (primary, second, expected, releasedIds) => {
    const released: string[] = [];
    const picker = fallbackPicker(members(released, ...primary), members(released, ...second));
    expect(pickedId(picker.peek(triedOf('a')))).toBe(expected);
    expect(pickedId(picker.pick(triedOf('a')))).toBe(expected);
    expect(released).toEqual(releasedIds);
  });

  it('reads the current picker of its sources on every pick', () => {
    const primary = source('none:no-instances');
    const picker = fallbackPicker(primary, source('b'));
    expect(pickedId(picker.pick({}))).toBe('b');
    primary.picker = source('a').picker;
    expect(pickedId(picker.pick({}))).toBe('a');
  });
});

describe('canaryPicker', () => {
  it('splits exactly 90/10 over a whole cycle', () => {
    expect(counts(1_000, canaryPicker(plan(source('v1'), source('v2')), new SmoothSplit([90, 10])))).toEqual({ v1: 900, v2: 100 });
  });

  it('sends every request on a header lane to its subset, and unmarked ones through the split', () => {
    const lanes = [{ header: 'x-canary', value: 'on', to: source('v2') }];
    const picker = canaryPicker(plan(source('v1'), source('v2'), { lanes }), new SmoothSplit([90, 10]));
    expect(counts(50, picker, { headers: { 'x-canary': 'on' } })).toEqual({ v2: 50 });
    expect(counts(100, picker, { headers: { 'x-canary': 'off' } })).toEqual({ v1: 90, v2: 10 });
    expect(counts(100, picker, { headers: {} })).toEqual({ v1: 90, v2: 10 });
  });

  it('keeps the split exact for unmarked requests whatever lane requests come between them: a lane takes no slot of the rotation', () => {
    const lanes = [{ header: 'x-canary', value: 'on', to: source('v2') }];
    const picker = canaryPicker(plan(source('v1'), source('v2'), { lanes }), new SmoothSplit([90, 10]));
    const plain: Record<string, number> = {};
    for (let index = 0; index < 1_000; index += 1) {
      // A lane request before every third unmarked one: with the rotation advanced by them too, unmarked requests went 867/133.
      if (index % 3 === 0) expect(picker.pick({ headers: { 'x-canary': 'on' } })).toMatchObject({ kind: 'endpoint' });
      const id = pickedId(picker.pick({ headers: {} }));
      plain[id] = (plain[id] ?? 0) + 1;
    }
    expect(plain).toEqual({ v1: 900, v2: 100 });
  });

  it('puts a request on a header lane when the header, sent twice or as a list, holds the lane value', () => {
    const lanes = [{ header: 'x-canary', value: 'on', to: source('v2') }];
    const picker = canaryPicker(plan(source('v1'), source('v2'), { lanes }), new SmoothSplit([1, 0]));
    // Node joins a header sent twice with ", ".
    expect(counts(5, picker, { headers: { 'x-canary': 'on, on' } })).toEqual({ v2: 5 });
    expect(counts(5, picker, { headers: { 'x-canary': 'off, on' } })).toEqual({ v2: 5 });
    expect(counts(5, picker, { headers: { 'x-canary': 'off, only' } })).toEqual({ v1: 5 });
  });

  it('sends requests carrying the lane cookie (any value when none is given) to its subset', () => {
    const lanes = [{ cookie: 'canary', to: source('v3') }];
    const picker = canaryPicker(plan(source('v1'), source('v2'), { lanes }), new SmoothSplit([90, 10]));
    expect(counts(10, picker, { headers: { cookie: 'session=1; canary=yes' } })).toEqual({ v3: 10 });
    expect(counts(10, picker, { headers: { cookie: 'session=1; canary=' } })).toEqual({ v1: 9, v2: 1 });
  });

  it('gives a lane whose subset is empty to the split', () => {
    const lanes = [{ header: 'x-canary', to: source('none:no-instances') }];
    const picker = canaryPicker(plan(source('v1'), source('v2'), { lanes }), new SmoothSplit([90, 10]));
    expect(counts(10, picker, { headers: { 'x-canary': '1' } })).toEqual({ v1: 9, v2: 1 });
  });

  it('sends the share of an empty subset to the others, so no request fails', () => {
    const picker = canaryPicker(plan(source('v1'), source('none:no-instances')), new SmoothSplit([90, 10]));
    expect(counts(100, picker)).toEqual({ v1: 100 });
  });

  it('uses the fallback only when every subset of the split is empty, and says no-healthy-instances when some subset has instances', () => {
    const empty = source('none:no-healthy-instances');
    expect(counts(10, canaryPicker(plan(empty, empty, { fallback: source('any') }), new SmoothSplit([90, 10])))).toEqual({ any: 10 });
    expect(counts(10, canaryPicker(plan(empty, source('none:no-instances')), new SmoothSplit([90, 10])))).toEqual({ 'none:no-healthy-instances': 10 });
    const nothing = source('none:no-instances');
    expect(counts(10, canaryPicker(plan(nothing, nothing), new SmoothSplit([90, 10])))).toEqual({ 'none:no-instances': 10 });
  });
});

describe('canaryPicker retries', () => {
  it('sends a retry that tried every member of the chosen subset to an untried one of the other, and releases the repeat', () => {
    const released: string[] = [];
    const picker = canaryPicker(plan(members(released, 'a'), members(released, 'b')), new SmoothSplit([90, 10]));
    // The split chose v1 for both: the old picker answered a, the one member of v1, again.
    expect([pickedId(picker.pick({})), pickedId(picker.pick(triedOf('a')))]).toEqual(['a', 'b']);
    expect(released).toEqual(['a']);
  });

  it('keeps a retry in the chosen subset while it has an untried member, and the split of first attempts exact', () => {
    const released: string[] = [];
    const picker = canaryPicker(plan(members(released, 'a', 'a2'), members(released, 'b')), new SmoothSplit([90, 10]));
    expect(pickedId(picker.pick(triedOf('a')))).toBe('a2');
    expect(counts(99, picker)).toEqual({ a: 89, b: 10 });
    expect(released).toEqual([]);
  });

  it.each([
    ["its lane's instance again, once it tried every one of the lane (a lane pins its requests while it has any)", { lanes: [{ header: 'x-canary', to: members([], 'c') }] }, { headers: { 'x-canary': '1' }, ...triedOf('c') }, 'c'],
    ['the fallback, once every subset of the split was tried', { fallback: members([], 'a', 'f') }, triedOf('a', 'b'), 'f'],
    ['a repeat of the chosen subset, once every member anywhere was tried', { fallback: members([], 'a') }, triedOf('a', 'b'), 'a'],
  ])('sends a retry to %s', (_case, extra: Partial<CanaryPlan>, context: PickContext, expected) => {
    const picker = canaryPicker(plan(members([], 'a'), members([], 'b'), extra), new SmoothSplit([90, 10]));
    expect(pickedId(picker.peek(context))).toBe(expected);
    expect(pickedId(picker.pick(context))).toBe(expected);
  });
});

describe('cookieValue', () => {
  it.each([
    ['a=1; canary=on', 'on'],
    ['canary=on;a=1', 'on'],
    ['xcanary=on', undefined],
    ['canary="on"', 'on'],
    [['a=1', 'canary=v2'], 'v2'],
    [undefined, undefined],
  ])('reads cookie canary from %j as %j', (header, expected) => {
    expect(cookieValue(header, 'canary')).toBe(expected);
  });
});
