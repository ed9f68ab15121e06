import { Etcd3 } from 'etcd3';

/** Loopback etcd answers a unary call in milliseconds; a loaded 2-core machine, in well under this. */
export const ETCD_CALL_TIMEOUT_MS = 5_000;

/**
 * An etcd3 client on `hosts` for a test or a bench to write and read the registry with: every unary
 * call (put, get, delete, compact...) fails instead of waiting for ever on an etcd that does not
 * answer, each attempt after `callTimeoutMs`: etcd3 tries a call up to 3 times on a deadline error,
 * so a stuck etcd fails it after about 3 × `callTimeoutMs`. Watch streams stay open as long as they
 * are wanted.
 */
export function etcdClient(hosts: string | string[], callTimeoutMs = ETCD_CALL_TIMEOUT_MS): Etcd3 {
  return new Etcd3({ hosts, defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + callTimeoutMs }) });
}
