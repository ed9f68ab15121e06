import { dirname } from 'node:path';
import { readEtcdCredentials, type EtcdCredentialFiles, type EtcdCredentials } from '../../src/etcd-credentials.ts';
import type { EtcdAuthFiles, EtcdTlsFiles, GatewayConfig } from './types.ts';

/** A problem with one credential file, at the key path that names it. */
export interface RegistryCredentialIssue {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

/** The files an etcd registry's or store's `tls` and `auth` blocks name, in the reader's terms. */
export function etcdCredentialFiles(tls: EtcdTlsFiles | undefined, auth: EtcdAuthFiles | undefined): EtcdCredentialFiles {
  return { caFile: tls?.caFile, certFile: tls?.certFile, keyFile: tls?.keyFile, username: auth?.username, passwordFile: auth?.passwordFile };
}

/**
 * Reads the files of each registry's `tls` and `auth` blocks (relative paths from the configuration
 * file's folder) with `readEtcdCredentials`, so that a missing or bad file refuses the configuration
 * at load, naming `registries[i].tls.caFile` and the reason, instead of failing to connect later.
 */
export function readRegistryCredentials(config: GatewayConfig, configPath: string): { config: GatewayConfig; issues: RegistryCredentialIssue[] } {
  const issues: RegistryCredentialIssue[] = [];
  const read = (tls: EtcdTlsFiles | undefined, auth: EtcdAuthFiles | undefined, at: readonly (string | number)[]): EtcdCredentials | undefined => {
    if (tls === undefined && auth === undefined) return undefined;
    const read = readEtcdCredentials(etcdCredentialFiles(tls, auth), dirname(configPath));
    for (const issue of read.issues) issues.push({ path: [...at, issue.field === 'username' || issue.field === 'passwordFile' ? 'auth' : 'tls', issue.field], message: issue.message });
    return read.credentials;
  };
  const registries = config.registries.map((registry, index) => {
    const credentials = read(registry.tls, registry.auth, ['registries', index]);
    return credentials === undefined ? registry : { ...registry, credentials };
  });
  const store = config.configStore;
  const storeCredentials = store && read(store.tls, store.auth, ['configStore']);
  return { config: { ...config, registries, ...(store && storeCredentials ? { configStore: { ...store, credentials: storeCredentials } } : {}) }, issues };
}
