import { dirname, resolve } from 'node:path';
import { certificatePairsOf } from './certificate-check.ts';
import { parseConfig } from './load.ts';
import type { GatewayConfig, ServiceSettings } from './types.ts';

/**
 * Every file `parseConfig` reads for `config` (parsed without reading them), as absolute paths:
 * each certificate pair (`certificatePairsOf`), the `caFile`, `certFile` and `keyFile` of `defaults`
 * and of every service, the `tls` and `auth` files of each registry and of the config store, and
 * each `jwtAuth` middleware's `secretFile` and `publicKeyFiles`, relative
 * ones from `configPath`'s folder as the readers take them. What a refused text may be waiting for.
 */
export function filesNamedBy(config: GatewayConfig, configPath: string): string[] {
  const base = dirname(resolve(configPath));
  const paths = new Set<string>();
  const add = (file: string | undefined) => {
    if (file !== undefined) paths.add(resolve(base, file));
  };
  for (const { files } of certificatePairsOf(config)) {
    add(files.certFile);
    add(files.keyFile);
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
  for (const definition of config.middlewares.values()) {
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
