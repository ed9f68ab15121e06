import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { GatewayConfig, ServiceSettings, UpstreamTlsSettings } from './types.ts';

/**
 * The text of one PEM file as read at configuration load. The text is a private field, so the
 * admin API's `/api/config` (which lists enumerable fields) shows the path and digest, never a key.
 */
export class PemFile {
  readonly #text: string;
  /** SHA-256 of the text: a changed file under the same path is a changed setting. */
  readonly sha256: string;

  constructor(
    readonly path: string,
    text: string,
  ) {
    this.#text = text;
    this.sha256 = createHash('sha256').update(text).digest('hex');
  }

  /** The PEM text. */
  get text(): string {
    return this.#text;
  }
}

/** The contents of a service's `tls` files. */
export interface UpstreamTlsFiles {
  readonly ca: PemFile | undefined;
  readonly cert: PemFile | undefined;
  readonly key: PemFile | undefined;
}

/** A problem with one TLS file, at the key path that names it. */
export interface TlsFileIssue {
  readonly path: readonly string[];
  readonly message: string;
}

/**
 * Reads the `caFile`, `certFile` and `keyFile` of `defaults` and every service (relative paths
 * from the configuration file's folder) and checks them with node:tls, so a bad file refuses the
 * configuration at load instead of failing requests later. Returns the configuration with `files`
 * filled in, or the issues (each file reported once, where it is first named).
 */
export function readUpstreamTlsFiles(config: GatewayConfig, configPath: string): { config: GatewayConfig; issues: TlsFileIssue[] } {
  const base = dirname(configPath);
  const cache = new Map<string, PemFile | undefined>();
  const issues: TlsFileIssue[] = [];
  const read = (file: string | undefined, path: readonly string[]): PemFile | undefined => {
    if (file === undefined) return undefined;
    const absolute = resolve(base, file);
    if (cache.has(absolute)) return cache.get(absolute);
    let pem: PemFile | undefined;
    try {
      const text = readFileSync(absolute, 'utf8');
      if (text.includes('-----BEGIN ')) pem = new PemFile(absolute, text);
      else issues.push({ path, message: `${absolute} is not a PEM file (no "-----BEGIN" line)` });
    } catch (error) {
      issues.push({ path, message: `cannot read ${absolute} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})` });
    }
    cache.set(absolute, pem);
    return pem;
  };
  const checked = new Set<string>();
  const withFiles = (settings: ServiceSettings, at: readonly string[]): ServiceSettings => {
    const tls = settings.tls;
    if (tls.caFile === undefined && tls.certFile === undefined) return settings;
    const files: UpstreamTlsFiles = { ca: read(tls.caFile, [...at, 'tls', 'caFile']), cert: read(tls.certFile, [...at, 'tls', 'certFile']), key: read(tls.keyFile, [...at, 'tls', 'keyFile']) };
    check(tls, files, at, checked, issues);
    return { ...settings, tls: { ...tls, files } };
  };
  const defaults = withFiles(config.defaults, ['defaults']);
  const services = new Map([...config.services].map(([name, settings]) => [name, withFiles(settings, ['services', name])]));
  return { config: { ...config, defaults, services }, issues };
}

/** Lets node:crypto and node:tls judge the CA bundle and the certificate/key pair, once per combination of files. */
function check(tls: UpstreamTlsSettings, files: UpstreamTlsFiles, at: readonly string[], checked: Set<string>, issues: TlsFileIssue[]): void {
  if (files.ca && !checked.has(`ca:${files.ca.path}`)) {
    checked.add(`ca:${files.ca.path}`);
    try {
      // node:tls skips PEM blocks it cannot parse in `ca`; X509Certificate does not (it reads the first certificate).
      new X509Certificate(files.ca.text);
      createSecureContext({ ca: files.ca.text });
    } catch (error) {
      issues.push({ path: [...at, 'tls', 'caFile'], message: `${files.ca.path}: not a usable CA bundle (${(error as Error).message})` });
    }
  }
  if (files.cert && files.key && !checked.has(`pair:${files.cert.path}|${files.key.path}`)) {
    checked.add(`pair:${files.cert.path}|${files.key.path}`);
    try {
      createSecureContext({ cert: files.cert.text, key: files.key.text });
    } catch (error) {
      issues.push({ path: [...at, 'tls', 'certFile'], message: `${tls.certFile} with ${tls.keyFile}: not a usable certificate and key (${(error as Error).message})` });
    }
  }
}
