import { dirname, resolve } from 'node:path';
import { certificatePairsOf } from './certificate-check.ts';
import type { GatewayConfig, ServiceSettings } from './types.ts';

/**
 * Every file `parseConfig` reads for `config` (parsed without reading them), as absolute paths:
 * each certificate pair (`certificatePairsOf`), the `caFile`, `certFile` and `keyFile` of `defaults`
 * and of every service, and each `jwtAuth` middleware's `secretFile` and `publicKeyFiles`, relative
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
  for (const definition of config.middlewares.values()) {
    if (definition.kind !== 'jwtAuth') continue;
    add(definition.settings.secretFile);
    definition.settings.publicKeyFiles.forEach(add);
  }
  return [...paths];
}
