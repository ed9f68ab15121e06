import { dirname } from 'node:path';
import { readCredentialFiles, type CredentialFiles, type ConnectionCredentials } from '../../src/connection-credentials.ts';
import type { EtcdTlsFiles, GatewayConfig, RedisSettings } from './types.ts';

/** A problem with one credential file, at the key path that names it. */
export interface RegistryCredentialIssue {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

/** An `auth` block as written: the user (Redis may go without one) and the file holding its password. */
interface AuthFiles {
  readonly username?: string | undefined;
  readonly passwordFile: string;
}

/** The files an etcd registry's or store's (or Redis') `tls` and `auth` blocks name, in the reader's terms. */
export function credentialFilesOf(tls: EtcdTlsFiles | undefined, auth: AuthFiles | undefined): CredentialFiles {
  return { caFile: tls?.caFile, certFile: tls?.certFile, keyFile: tls?.keyFile, username: auth?.username, passwordFile: auth?.passwordFile };
}

/**
 * Reads the files of each registry's `tls` and `auth` blocks, the config store's and those of
 * `redis` (`tls`, `auth`, `sentinelAuth`; relative paths from the configuration file's folder) with
 * `readCredentialFiles`, so that a missing or bad file refuses the configuration at load, naming
 * `registries[i].tls.caFile` and the reason, instead of failing to connect later.
 */
export function readRegistryCredentials(config: GatewayConfig, configPath: string): { config: GatewayConfig; issues: RegistryCredentialIssue[] } {
  const issues: RegistryCredentialIssue[] = [];
  const read = (tls: EtcdTlsFiles | undefined, auth: AuthFiles | undefined, at: readonly (string | number)[], options: { authBlock?: string; passwordAlone?: boolean } = {}): ConnectionCredentials | undefined => {
    if (tls === undefined && auth === undefined) return undefined;
    const read = readCredentialFiles(credentialFilesOf(tls, auth), dirname(configPath), { passwordAlone: options.passwordAlone ?? false });
    for (const issue of read.issues) issues.push({ path: [...at, issue.field === 'username' || issue.field === 'passwordFile' ? (options.authBlock ?? 'auth') : 'tls', issue.field], message: issue.message });
    return read.credentials;
  };
  const registries = config.registries.map((registry, index) => {
    const credentials = read(registry.tls, registry.auth, ['registries', index]);
    return credentials === undefined ? registry : { ...registry, credentials };
  });
  const store = config.configStore;
  const storeCredentials = store && read(store.tls, store.auth, ['configStore']);
  const redis = config.redis && withRedisCredentials(config.redis, (tls, auth, options) => read(tls, auth, ['redis'], options));
  return {
    config: {
      ...config,
      registries,
      ...(store && storeCredentials ? { configStore: { ...store, credentials: storeCredentials } } : {}),
      ...(redis && redis !== config.redis ? { redis } : {}),
    },
    issues,
  };
}

/** `redis` with what its `tls`, `auth` and `sentinelAuth` name, read by `read`; itself when it names nothing. */
function withRedisCredentials(
  redis: RedisSettings,
  read: (tls: EtcdTlsFiles | undefined, auth: AuthFiles | undefined, options: { authBlock?: string; passwordAlone: boolean }) => ConnectionCredentials | undefined,
): RedisSettings {
  const credentials = read(redis.tls, redis.auth, { passwordAlone: true });
  const sentinelCredentials = redis.sentinelAuth && read(undefined, redis.sentinelAuth, { authBlock: 'sentinelAuth', passwordAlone: true });
  if (credentials === undefined && sentinelCredentials === undefined) return redis;
  return { ...redis, ...(credentials ? { credentials } : {}), ...(sentinelCredentials ? { sentinelCredentials } : {}) };
}
