import { EtcdAuthenticationFailedError, EtcdPermissionDeniedError } from 'etcd3';
import { RegistryRefusalError } from '../../errors.ts';

/** Who asked and what for, to name in a refusal. */
export interface EtcdRefusalContext {
  readonly endpoint: string;
  /** The key or `<prefix>/` the call was about. */
  readonly key: string;
  readonly right: 'read' | 'write';
  /** The etcd user the client authenticates as; undefined: no `auth`. */
  readonly username: string | undefined;
}

/**
 * Whether etcd refused a call from a client that sent no user: etcd with authentication on answers
 * it "etcdserver: user name is empty" (gRPC INVALID_ARGUMENT, which etcd3 leaves untyped), never
 * "permission denied".
 */
export function isEtcdUserMissing(error: unknown): boolean {
  return error instanceof Error && error.message.includes('etcdserver: user name is empty');
}

/**
 * Whether etcd refused the client's user and password ("authentication failed, invalid user ID or
 * password", from the Authenticate call etcd3 makes before the call itself): the member answered,
 * and no member will take that password until the file or the user's password changes.
 */
export function isEtcdPasswordRefused(error: unknown): boolean {
  return error instanceof EtcdAuthenticationFailedError || (error instanceof Error && (error.message.includes('etcdserver: authentication failed, invalid user ID or password') || isEtcdNoPasswordUser(error)));
}

/**
 * Whether etcd refused a password because its user has none (made with `--no-password`, for a TLS
 * client certificate's CN): etcd 3.4 answers "auth: authentication failed, password was given for
 * no password user" as gRPC UNKNOWN, without the "etcdserver:" prefix, so etcd3 leaves it untyped.
 */
export function isEtcdNoPasswordUser(error: unknown): boolean {
  return error instanceof Error && error.message.includes('authentication failed, password was given for no password user');
}

/** Whether etcd refused the call for who made it (no right, or no user while auth is on): no other member answers otherwise. */
export function isEtcdRefusal(error: unknown): boolean {
  return error instanceof EtcdPermissionDeniedError || isEtcdUserMissing(error);
}

/**
 * etcd's refusal of the user as a `RegistryRefusalError` that names the endpoint, the user and the key or
 * prefix, and what to grant; any other error comes back unchanged. A bare
 * "7 PERMISSION_DENIED: etcdserver: permission denied" names none of them, so it read like an outage.
 */
export function describeEtcdRefusal(error: unknown, context: EtcdRefusalContext): unknown {
  const { endpoint, key, right, username } = context;
  const user = username === undefined ? 'the client, connected without auth,' : `etcd user "${username}"`;
  if (error instanceof EtcdPermissionDeniedError) {
    const grant = right === 'write' ? 'readwrite' : 'read';
    // A key's folder is the narrowest prefix to grant: a peer's or an instance's key changes with its id.
    const prefix = key.endsWith('/') ? key : key.slice(0, key.lastIndexOf('/') + 1);
    return new RegistryRefusalError(`etcd ${endpoint} refused ${user} the right to ${right} ${key} (permission denied): grant one of its roles ${grant} on the prefix (etcdctl role grant-permission --prefix=true <role> ${grant} ${prefix})`, { cause: error });
  }
  if (isEtcdUserMissing(error)) {
    return new RegistryRefusalError(`etcd ${endpoint} has authentication on and refused ${user} the right to ${right} ${key} (user name is empty): give it auth { username, passwordFile }`, { cause: error });
  }
  if (isEtcdNoPasswordUser(error)) {
    return new RegistryRefusalError(`etcd ${endpoint} refused the password of ${user}, a user without password (password was given for no password user): authenticate it by its client certificate, without passwordFile`, { cause: error });
  }
  if (error instanceof EtcdAuthenticationFailedError) {
    return new RegistryRefusalError(`etcd ${endpoint} refused the password of ${user} (authentication failed, invalid user ID or password)`, { cause: error });
  }
  return error;
}
