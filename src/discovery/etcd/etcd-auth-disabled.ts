import type { Etcd3 } from 'etcd3';
import { componentLogger, type Logger } from '../../logger.ts';

/**
 * Whether etcd answered a login (Authenticate) "authentication is not enabled" (gRPC
 * FAILED_PRECONDITION): the member has auth off and takes every call without a token.
 */
export function isEtcdAuthDisabled(error: unknown): boolean {
  return error instanceof Error && error.message.includes('etcdserver: authentication is not enabled');
}

/** Whether etcd refused a call without a token because its authentication is on ("user name is empty"). */
export function isEtcdUserEmpty(error: unknown): boolean {
  return error instanceof Error && error.message.includes('etcdserver: user name is empty');
}

/** The part of etcd3's (1.x) connection pool this module relies on; not in its public types. */
interface EtcdAuthenticator {
  options: { auth?: unknown; hosts: string | string[] };
  awaitingMetadata: Promise<unknown> | null;
  getMetadata(): Promise<unknown>;
  invalidateMetadata(): void;
  getCredentialsFromHost(...args: unknown[]): Promise<string>;
}

interface EtcdPool {
  authenticator: EtcdAuthenticator;
  exec(...args: unknown[]): Promise<unknown>;
}

/**
 * Makes `client`, given a user and password, go on without a token when etcd has authentication
 * off, as etcd's own client does (clientv3 `getToken`: on `ErrAuthNotEnabled` it returns no error
 * and no token, so etcdctl works there with `--user`): etcd3 alone failed every call with the
 * login's "authentication is not enabled", so a gateway read nothing and answered admin writes 503.
 * The empty login is kept as etcd3 keeps a token (no login per call: etcd3 opens a gRPC channel for
 * each login and never closes it), and, as clientv3's `shouldRefreshToken`, a call refused "user
 * name is empty" (an operator turned auth on) drops it, logs in and is sent once more. Warns once
 * per client that the configured user is unused. Returns `client`.
 */
export function tolerateEtcdAuthDisabled(client: Etcd3, log: Logger = componentLogger('etcd')): Etcd3 {
  const pool = etcdPoolOf(client);
  const { authenticator } = pool;
  const getMetadata = authenticator.getMetadata;
  // The same method on a view of the authenticator without `auth` (and without a login in flight):
  // etcd3's own empty metadata, built with its own gRPC library.
  const anonymous = Object.create(authenticator, { options: { value: { ...authenticator.options, auth: undefined } }, awaitingMetadata: { value: null } }) as EtcdAuthenticator;
  let warned = false;
  // etcd3 tries each member in turn and rejects with the last one's error, so a member that answered
  // "not enabled" before one that is down is remembered: auth is on or off for the whole cluster.
  let answeredDisabled = false;
  const getCredentialsFromHost = authenticator.getCredentialsFromHost;
  authenticator.getCredentialsFromHost = (...args: unknown[]) =>
    getCredentialsFromHost.apply(authenticator, args).catch((error: unknown) => {
      if (isEtcdAuthDisabled(error)) answeredDisabled = true;
      throw error;
    });
  authenticator.getMetadata = () => {
    if (authenticator.awaitingMetadata === null) answeredDisabled = false;
    return getMetadata.call(authenticator).catch((error: unknown) => {
      if (!isEtcdAuthDisabled(error) && !answeredDisabled) throw error;
      if (!warned) {
        warned = true;
        log.warn({ endpoints: authenticator.options.hosts }, 'etcd has authentication off: the configured user and password are not used, and calls go without a token until it is turned on');
      }
      const metadata = getMetadata.call(anonymous);
      // Kept until invalidated, as a token is: by etcd3 on "invalid auth token", or below on "user name is empty".
      authenticator.awaitingMetadata ??= metadata;
      return metadata;
    });
  };
  const exec = pool.exec;
  pool.exec = (...args: unknown[]) =>
    exec.apply(pool, args).catch((error: unknown) => {
      if (!isEtcdUserEmpty(error)) throw error;
      authenticator.invalidateMetadata();
      return exec.apply(pool, args);
    });
  return client;
}

/** etcd3's connection pool of `client`; throws when an etcd3 version keeps its authenticator elsewhere (a unit test checks the installed one). */
function etcdPoolOf(client: Etcd3): EtcdPool {
  const pool = (client as unknown as { pool?: Partial<EtcdPool> & { authenticator?: Partial<EtcdAuthenticator> } }).pool;
  const authenticator = pool?.authenticator;
  if (typeof pool?.exec !== 'function' || typeof authenticator?.getMetadata !== 'function' || typeof authenticator.invalidateMetadata !== 'function' || typeof authenticator.getCredentialsFromHost !== 'function' || typeof authenticator.options !== 'object' || !('awaitingMetadata' in authenticator)) {
    throw new Error('etcd3 keeps its authenticator elsewhere than pool.authenticator: etcd-auth-disabled.ts needs updating for this etcd3 version');
  }
  return pool as EtcdPool;
}
