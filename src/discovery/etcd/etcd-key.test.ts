import { describe, expect, it } from 'vitest';
import { normalizePrefix, parseInstanceKey, tooDeepKeyService } from './etcd-key.ts';

describe('parseInstanceKey', () => {
  it.each([
    ['/services/orders/i-1', { service: 'orders', instanceId: 'i-1' }],
    ['/services/orders/10.0.0.1:8080', { service: 'orders', instanceId: '10.0.0.1:8080' }],
    ['/services/a b/ü', { service: 'a b', instanceId: 'ü' }],
  ])('splits %s into its service and instance id', (key, expected) => {
    expect(parseInstanceKey('/services', key)).toEqual(expected);
  });

  it.each([
    ['a key directly under the prefix', '/services/orders'],
    ['a key one level too deep', '/services/orders/i-1/extra'],
    ['a key with an empty service', '/services//i-1'],
    ['a key with an empty instance id', '/services/orders/'],
    ['a key outside the prefix', '/other/orders/i-1'],
    ['a key that only shares the prefix text', '/servicesX/orders/i-1'],
    ['the prefix itself', '/services'],
  ])('rejects %s', (_what, key) => {
    expect(parseInstanceKey('/services', key)).toBeUndefined();
  });

  it('accepts keys under an empty prefix, where services sit at the root', () => {
    expect(parseInstanceKey('', '/orders/i-1')).toEqual({ service: 'orders', instanceId: 'i-1' });
  });
});

describe('tooDeepKeyService', () => {
  it.each([
    ['a key one level below an instance key', '/services/orders/i-1/extra', undefined, 'orders'],
    ['a key two levels below an instance key', '/services/orders/i-1/a/b', undefined, 'orders'],
    ['a key below an instance key of the prefix\'s one service', '/services/i-1/extra', 'web', 'web'],
    ['an instance key', '/services/orders/i-1', undefined, undefined],
    ['an instance key of the prefix\'s one service', '/services/i-1', 'web', undefined],
    ['a key directly under the prefix', '/services/orders', undefined, undefined],
    ['a deep key with an empty service', '/services//i-1/extra', undefined, undefined],
    ['a deep key with an empty instance id', '/services/orders//extra', undefined, undefined],
    ['a deep key outside the prefix', '/other/orders/i-1/extra', undefined, undefined],
  ])('names the service of %s (or none)', (_what, key, service, expected) => {
    expect(tooDeepKeyService('/services', key, service)).toBe(expected);
  });

  it('names none under a prefix of /, where deeper keys are other tools\' (the config store\'s)', () => {
    expect(tooDeepKeyService('', '/switchboard/peers/gw-1')).toBeUndefined();
  });
});

describe('normalizePrefix', () => {
  it.each([
    ['/services', '/services'],
    ['/services/', '/services'],
    ['/services//', '/services'],
    ['/', ''],
  ])('turns %s into %s', (input, expected) => {
    expect(normalizePrefix(input)).toBe(expected);
  });
});
