import { EtcdAuthenticationFailedError, EtcdPermissionDeniedError, GRPCUnknownError } from 'etcd3';
import { describe, expect, it } from 'vitest';
import { RegistryError } from '../../errors.ts';
import { describeEtcdRefusal, isEtcdPasswordRefused, isEtcdRefusal } from './etcd-refusal.ts';

describe('describeEtcdRefusal', () => {
  const context = { endpoint: 'http://127.0.0.1:2379', key: '/sb/', right: 'read', username: 'gateway' } as const;

  it('names the endpoint, the user, the prefix and the grant for a permission denied', () => {
    const cause = new EtcdPermissionDeniedError('7 PERMISSION_DENIED: etcdserver: permission denied');
    const described = describeEtcdRefusal(cause, context) as RegistryError;
    expect(described).toBeInstanceOf(RegistryError);
    expect(described.message).toBe('etcd http://127.0.0.1:2379 refused etcd user "gateway" the right to read /sb/ (permission denied): grant one of its roles read on the prefix (etcdctl role grant-permission --prefix=true <role> read /sb/)');
    expect(described.cause).toBe(cause);
  });

  it('grants readwrite on the folder of a key that could not be written', () => {
    const described = describeEtcdRefusal(new EtcdPermissionDeniedError('denied'), { ...context, key: '/sb/peers/gw-1', right: 'write', username: undefined }) as Error;
    expect(described.message).toMatch(/^etcd http:\/\/127\.0\.0\.1:2379 refused the client, connected without auth, the right to write \/sb\/peers\/gw-1 .*readwrite \/sb\/peers\/\)$/);
  });

  it('names the endpoint and the user for a wrong password', () => {
    expect((describeEtcdRefusal(new EtcdAuthenticationFailedError('x'), context) as Error).message).toBe('etcd http://127.0.0.1:2379 refused the password of etcd user "gateway" (authentication failed, invalid user ID or password)');
  });

  it('says to set auth when etcd with authentication on refuses a client that sent no user', () => {
    const cause = new Error('3 INVALID_ARGUMENT: etcdserver: user name is empty');
    const described = describeEtcdRefusal(cause, { ...context, username: undefined }) as RegistryError;
    expect(described).toBeInstanceOf(RegistryError);
    expect(described.message).toBe('etcd http://127.0.0.1:2379 has authentication on and refused the client, connected without auth, the right to read /sb/ (user name is empty): give it auth { username, passwordFile }');
    expect(described.cause).toBe(cause);
  });

  it('passes any other error through unchanged', () => {
    const other = new Error('14 UNAVAILABLE: connect ECONNREFUSED');
    expect(describeEtcdRefusal(other, context)).toBe(other);
    expect(describeEtcdRefusal(undefined, context)).toBeUndefined();
  });
});

describe('isEtcdPasswordRefused', () => {
  it.each([
    ['the typed error', new EtcdAuthenticationFailedError('3 INVALID_ARGUMENT: etcdserver: authentication failed, invalid user ID or password'), true],
    ['the untyped gRPC error', new Error('3 INVALID_ARGUMENT: etcdserver: authentication failed, invalid user ID or password'), true],
    ['a permission denied', new EtcdPermissionDeniedError('7 PERMISSION_DENIED: etcdserver: permission denied'), false],
    ['etcd 3.4\'s refusal of a password for a user made with --no-password (gRPC UNKNOWN, no "etcdserver:")', new GRPCUnknownError('2 UNKNOWN: auth: authentication failed, password was given for no password user'), true],
    ['an outage', new Error('14 UNAVAILABLE: connect ECONNREFUSED'), false],
  ])('tells %s', (_name, error, expected) => {
    expect(isEtcdPasswordRefused(error)).toBe(expected);
  });

  it('is no refusal of a right: a wrong password is told apart from a missing role', () => {
    expect(isEtcdRefusal(new EtcdAuthenticationFailedError('x'))).toBe(false);
  });
});

describe('describeEtcdRefusal of a password given for a user without password', () => {
  it('names the endpoint and the user and says to authenticate by certificate, not as an outage', () => {
    const described = describeEtcdRefusal(new GRPCUnknownError('2 UNKNOWN: auth: authentication failed, password was given for no password user'), { endpoint: 'http://127.0.0.1:2379', key: '/sb/', right: 'read', username: 'gateway' });
    expect(described).toBeInstanceOf(RegistryError);
    expect((described as Error).message).toBe('etcd http://127.0.0.1:2379 refused the password of etcd user "gateway", a user without password (password was given for no password user): authenticate it by its client certificate, without passwordFile');
  });
});
