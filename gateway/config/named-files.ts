import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { certificatePairsOf } from './certificate-check.ts';
import { parseConfig } from './load.ts';
import type { GatewayConfig, ServiceSettings } from './types.ts';

/**
 * Every file `parseConfig` reads for `config` (parsed without reading them), as absolute paths:
 * each certificate pair (`certificatePairsOf`) and entry point client CA bundle (`tls.clientAuth.caFile`), the `caFile`, `certFile` and `keyFile` of `defaults`
 * and of every service, the `tls` and `auth` files of each registry, of the config store and of `redis`, and
 * each `jwtAuth` middleware's `secretFile` and `publicKeyFiles` and each `respond` middleware's `bodyFile` and `errors` middleware's pages, relative
 * ones from `configPath`'s folder as the readers take them. What a refused text may be waiting for.
 * With `certificatePairs: false`, all but the certificate pairs and client CA bundles (which the entry points' certificate watch reloads on its own).
 */
export function filesNamedBy(config: GatewayConfig, configPath: string, options: { readonly certificatePairs?: boolean } = {}): string[] {
  const base = dirname(resolve(configPath));
  const paths = new Set<string>();
  const add = (file: string | undefined) => {
    if (file !== undefined) paths.add(resolve(base, file));
  };
  if (options.certificatePairs ?? true) {
    for (const { files } of certificatePairsOf(config)) {
      add(files.certFile);
      add(files.keyFile);
    }
    for (const entryPoint of config.entryPoints) add(entryPoint.tls?.clientAuth?.caFile);
  }
  const upstreamTls = ({ tls }: ServiceSettings) => {
    add(tls.caFile);
    add(tls.certFile);
    add(tls.keyFile);
  };
  upstreamTls(config.defaults);
  for (const settings of config.services.values()) upstreamTls(settings);
  for (const { tls, auth } of [...config.registries, ...(config.configStore ? [config.configStore] : [])]) {
    add(tls?.caFile);
    add(tls?.certFile);
    add(tls?.keyFile);
    add(auth?.passwordFile);
  }
  const redis = config.redis;
  add(redis?.tls?.caFile);
  add(redis?.tls?.certFile);
  add(redis?.tls?.keyFile);
  add(redis?.auth?.passwordFile);
  add(redis?.sentinelAuth?.passwordFile);
  for (const definition of config.middlewares.values()) {
    if (definition.kind === 'respond') add(definition.settings.bodyFile);
    if (definition.kind === 'errors') for (const page of definition.settings.pages) add(page.file);
    if (definition.kind !== 'jwtAuth') continue;
    add(definition.settings.secretFile);
    definition.settings.publicKeyFiles.forEach(add);
  }
  return [...paths];
}

/**
 * The files `text` (a configuration `parseConfig` refused: a file's, or a merged document) names when it would parse but for them
 * (`parseConfig` without reading files, then `filesNamedBy`), or undefined when it is refused for its
 * own content: then only a change of the store or the file can change that.
 */
export function filesOfRefusal(path: string, text: string): string[] | undefined {
  try {
    return filesNamedBy(parseConfig(path, text, { readFiles: false }), path);
  } catch {
    return undefined;
  }
}

/**
 * The files a running configuration `text` reads only when it loads (`filesNamedBy` but the certificate pairs):
 * upstream CA bundles and client pairs, registry and config store credentials, JWT key files, respond bodies, error pages. None for a text
 * that does not parse on its own.
 */
export function filesReadOnLoad(path: string, text: string): string[] {
  try {
    return filesNamedBy(parseConfig(path, text, { readFiles: false }), path, { certificatePairs: false });
  } catch {
    return [];
  }
}

/** A digest of the contents of `paths` as they are now (an unreadable file counts as its error's code): equal digests, nothing to read again. */
export function filesFingerprint(paths: readonly string[]): string {
  const hash = createHash('sha256');
  for (const path of paths) {
    hash.update(path).update('\0');
    try {
      hash.update(readFileSync(path));
    } catch (error) {
      hash.update(`unreadable:${String((error as NodeJS.ErrnoException).code)}`);
    }
    hash.update('\0');
  }
  return hash.digest('base64url');
}
