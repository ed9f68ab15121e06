import type { Etcd3 } from 'etcd3';

/**
 * Whether etcd answered a login (Authenticate) "authentication is not enabled" (gRPC
 * FAILED_PRECONDITION): the member has auth off and takes every call without a token.
 */
export function isEtcdAuthDisabled(error: unknown): boolean {
  return error instanceof Error && error.message.includes('etcdserver: authentication is not enabled');
}

/** The part of etcd3's (1.x) connection pool this module relies on; not in its public types. */
interface EtcdAuthenticator {
  options: { auth?: unknown };
  getMetadata(): Promise<unknown>;
}

/**
 * Makes `client`, given a user and password, go on without a token when etcd has authentication
 * off, as etcd's own client does (clientv3 `getToken`: on `ErrAuthNotEnabled` it returns no error
 * and no token, so etcdctl works there with `--user`): etcd3 alone failed every call with the
 * login's "authentication is not enabled", so a gateway read nothing and answered admin writes 503.
 * The login is tried again before each call while auth is off (a small call), so once an operator
 * turns auth on the client logs in at its next call instead of being refused "user name is empty".
 * Returns `client`.
 */
export function tolerateEtcdAuthDisabled(client: Etcd3): Etcd3 {
  const authenticator = etcdAuthenticatorOf(client);
  const getMetadata = authenticator.getMetadata;
  // The same method on a view of the authenticator without `auth` (and without a login in flight):
  // etcd3's own empty metadata, built with its own gRPC library.
  const anonymous = Object.create(authenticator, { options: { value: { ...authenticator.options, auth: undefined } }, awaitingMetadata: { value: null } }) as EtcdAuthenticator;
  authenticator.getMetadata = () =>
    getMetadata.call(authenticator).catch((error: unknown) => {
      if (!isEtcdAuthDisabled(error)) throw error;
      return getMetadata.call(anonymous);
    });
  return client;
}

/** etcd3's authenticator of `client`; throws when an etcd3 version keeps it elsewhere (a unit test checks the installed one). */
function etcdAuthenticatorOf(client: Etcd3): EtcdAuthenticator {
  const authenticator = (client as unknown as { pool?: { authenticator?: Partial<EtcdAuthenticator> } }).pool?.authenticator;
  if (typeof authenticator?.getMetadata !== 'function' || typeof authenticator.options !== 'object') {
    throw new Error('etcd3 keeps its authenticator elsewhere than pool.authenticator: etcd-auth-disabled.ts needs updating for this etcd3 version');
  }
  return authenticator as EtcdAuthenticator;
}
