import { Etcd3 } from 'etcd3';
import { describe, expect, it } from 'vitest';
import { isEtcdAuthDisabled, tolerateEtcdAuthDisabled } from './etcd-auth-disabled.ts';

describe('tolerateEtcdAuthDisabled', () => {
  it('finds the authenticator of the installed etcd3, so an upgrade that moves it fails here and not in production', () => {
    const client = new Etcd3({ hosts: '127.0.0.1:1', auth: { username: 'u', password: 'p' } });
    try {
      expect(tolerateEtcdAuthDisabled(client)).toBe(client);
    } finally {
      client.close();
    }
  });

  it.each([
    ['9 FAILED_PRECONDITION: etcdserver: authentication is not enabled', true],
    ['etcdserver: authentication failed, invalid user ID or password', false],
    ['3 INVALID_ARGUMENT: etcdserver: user name is empty', false],
  ])('tells "%s" for auth off: %s', (message, expected) => {
    expect(isEtcdAuthDisabled(new Error(message))).toBe(expected);
  });
});
