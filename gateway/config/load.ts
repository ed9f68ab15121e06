import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigFileError } from '../../src/errors.ts';
import { readFileWithSave, type FileReading } from '../../src/folder-watch-settle.ts';
import { MAX_ALIAS_COUNT, parseFast } from './fast-parse.ts';
import { describeIssues, locateIssues, type ConfigIssue } from './issues.ts';
import { resolveConfig } from './resolve.ts';
import { readAccessFiles } from './access-files.ts';
import { certificatePairsOf, checkCertificateFiles, checkSettledCertificatePair, type CertificateSettleOptions } from './certificate-check.ts';
import { readRegistryCredentials } from './registry-credential-files.ts';
import { readRespondFiles } from './respond-files.ts';
import { readUpstreamTlsFiles } from './upstream-tls-files.ts';
import { configSchema } from './schema.ts';
import type { GatewayConfig } from './types.ts';

/**
 * A refused gateway configuration: a `ConfigFileError` (code `SB_CONFIG_INVALID`) whose message
 * reads `<file>: <key path> (line N): <reason>[; …]` and whose `issues` list every problem found.
 */
export class GatewayConfigError extends ConfigFileError {
  readonly issues: readonly ConfigIssue[];

  constructor(path: string, issues: readonly ConfigIssue[], options?: { cause?: unknown }) {
    super(path, describeIssues(issues), options);
    this.issues = issues;
  }
}

/**
 * Parses the text of a gateway configuration file (YAML, or JSON which is YAML) and applies every
 * default, then reads the TLS files it names (relative to `path`'s folder). Throws
 * `GatewayConfigError` naming `path`, the key path, its line and the reason; every problem in the
 * file is reported at once, and unknown keys are errors.
 */
export function parseConfig(path: string, text: string, options: ParseConfigOptions = {}): GatewayConfig {
  return parseFastPath(path, text, options) ?? parseLocated(path, text, options);
}

/**
 * The configuration read by js-yaml when the text is clear of everything where it and `yaml` could
 * disagree, or `undefined` when anything is wrong or unsure: errors are only ever reported by
 * `parseLocated`, which knows their lines.
 */
function parseFastPath(path: string, text: string, options: ParseConfigOptions): GatewayConfig | undefined {
  const fast = parseFast(text);
  if (!fast) return undefined;
  const parsed = configSchema.safeParse(withoutExtensions(fast.content ?? {}));
  if (!parsed.success) return undefined;
  const resolved = resolveConfig(parsed.data, { baseDir: dirname(resolve(path)), configPath: resolve(path) });
  if (options.readFiles === false) return resolved;
  const withTls = readUpstreamTlsFiles(resolved, path);
  const withRegistries = readRegistryCredentials(withTls.config, path);
  const withKeys = readAccessFiles(withRegistries.config, path);
  const { config, issues } = readRespondFiles(withKeys.config, path);
  const clear = withTls.issues.length === 0 && withRegistries.issues.length === 0 && withKeys.issues.length === 0 && issues.length === 0;
  return clear && checkCertificateFiles(config).length === 0 ? config : undefined;
}

/** `parseConfig` by `yaml` alone, with positions so that every problem names its line (the benchmark's "before"). */
export function parseLocated(path: string, text: string, options: ParseConfigOptions): GatewayConfig {
  const lines = new LineCounter();
  // `merge` lets a file share settings through YAML anchors (`<<: *common`).
  const document = parseDocument(text, { lineCounter: lines, merge: true, prettyErrors: false, uniqueKeys: true });
  if (document.errors.length > 0) {
    const issues = document.errors.map((error) => ({
      keyPath: '',
      line: lines.linePos(error.pos[0]).line,
      reason: `not valid YAML or JSON: ${error.message.split('\n')[0]}`,
    }));
    throw new GatewayConfigError(path, issues, { cause: document.errors[0] });
  }
  let content: unknown;
  try {
    content = document.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    throw new GatewayConfigError(path, [{ keyPath: '(root)', line: undefined, reason: (error as Error).message }], { cause: error });
  }
  const parsed = configSchema.safeParse(withoutExtensions(content ?? {}));
  if (!parsed.success) throw new GatewayConfigError(path, locateIssues(parsed.error.issues, document, lines));
  const resolved = resolveConfig(parsed.data, { baseDir: dirname(resolve(path)), configPath: resolve(path) });
  if (options.readFiles === false) return resolved;
  const withTls = readUpstreamTlsFiles(resolved, path);
  const withRegistries = readRegistryCredentials(withTls.config, path);
  const withKeys = readAccessFiles(withRegistries.config, path);
  const { config, issues: respondIssues } = readRespondFiles(withKeys.config, path);
  const issues = [...withTls.issues, ...withRegistries.issues, ...withKeys.issues, ...respondIssues, ...checkCertificateFiles(config)];
  if (issues.length > 0) {
    const asZod = issues.map((issue) => ({ code: 'custom' as const, path: [...issue.path], message: issue.message, input: undefined }));
    throw new GatewayConfigError(path, locateIssues(asZod, document, lines));
  }
  return config;
}

/**
 * `parseConfig` for a configuration about to be applied (at start, on a reload): when the text is
 * refused and a certificate pair it names does not check, that pair is read again until it has
 * settled (`checkSettledCertificatePair`, the certificate folder watch's rule) and the text is parsed
 * once more. A reload that lands in a renewal written one file at a time (a new certificate with the
 * old key, a file relinked) thus waits for it, by at most the maximum wait, instead of being refused;
 * a pair still bad then refuses it as before. A text that parses costs nothing more. Once
 * `settle.signal` is aborted, the pairs are read no more and it rejects with the signal's reason.
 */
export async function parseConfigSettled(path: string, text: string, settle: CertificateSettleOptions = {}): Promise<GatewayConfig> {
  try {
    return parseConfig(path, text);
  } catch (error) {
    return parseRefusedConfigSettled(path, text, error, settle);
  }
}

/**
 * The rest of `parseConfigSettled` once `parseConfig` has refused `text` with `error`: rethrows it
 * unless a certificate pair the text names does not check, else waits for those pairs to settle and
 * parses the text once more. For a caller that must know whether the parse waited (`watchConfig`).
 */
export async function parseRefusedConfigSettled(path: string, text: string, error: unknown, settle: CertificateSettleOptions = {}): Promise<GatewayConfig> {
  if (!(error instanceof GatewayConfigError)) throw error;
  let unchecked: GatewayConfig;
  try {
    unchecked = parseConfig(path, text, { readFiles: false });
  } catch {
    throw error;
  }
  const waits = certificatePairsOf(unchecked).map(({ files, minVersion }) => checkSettledCertificatePair(files, minVersion, settle).then(() => undefined, () => undefined));
  if (waits.length === 0) throw error;
  await Promise.all(waits);
  settle.signal?.throwIfAborted();
  return parseConfig(path, text);
}

/** Options of `parseConfig`. */
export interface ParseConfigOptions {
  /** Read the files the configuration names (upstream TLS, JWT keys); true by default. Off for documentation examples, whose files do not exist. */
  readonly readFiles?: boolean;
}

/** Top-level `x-…` keys are the author's own (YAML anchors to share, notes), as in Docker Compose files. */
function withoutExtensions(content: unknown): unknown {
  if (typeof content !== 'object' || content === null || Array.isArray(content)) return content;
  return Object.fromEntries(Object.entries(content).filter(([key]) => !key.startsWith('x-')));
}

/** Reads and parses the configuration file at `path`; an unreadable file is a `GatewayConfigError` too. */
export async function loadConfig(path: string): Promise<GatewayConfig> {
  return parseConfig(path, await readConfigText(path));
}

/** The text of the file at `path`, or a `GatewayConfigError` saying why it cannot be read. */
export async function readConfigText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw unreadableConfig(path, error);
  }
}

/** The configuration file's text and the save it came from (see `readFileWithSave`). */
export type ConfigFileReading = FileReading;

/** Reads the file at `path` with the stamp of the save its text came from, or throws a `GatewayConfigError` saying why it cannot be read. */
export async function readConfigFile(path: string): Promise<ConfigFileReading> {
  try {
    return await readFileWithSave(path);
  } catch (error) {
    throw unreadableConfig(path, error);
  }
}

function unreadableConfig(path: string, error: unknown): GatewayConfigError {
  const code = (error as NodeJS.ErrnoException).code;
  return new GatewayConfigError(path, [{ keyPath: '', line: undefined, reason: `cannot read the file (${code ?? (error as Error).message})` }], { cause: error });
}
