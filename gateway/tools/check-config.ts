import { LineCounter, parseDocument } from 'yaml';
import { ConfigFileError } from '../../src/errors.ts';
import { GatewayConfigError, parseLocated, readConfigText } from '../config/load.ts';
import { locateIssues, type ConfigIssue } from '../config/issues.ts';
import type { GatewayConfig } from '../config/types.ts';
import { loadCertificate } from '../entrypoints/tls-certificates.ts';

/** What `switchboard check` found in one file: the configuration when valid, every problem otherwise. */
export interface CheckResult {
  readonly path: string;
  readonly config: GatewayConfig | undefined;
  readonly issues: readonly ConfigIssue[];
}

/**
 * Validates the configuration file at `path` as the gateway would load it, without starting
 * anything: the text is read by `yaml` (which knows lines, unlike the start-up fast path), checked
 * against the schema, and every file it names is read and checked (upstream TLS files, JWT keys,
 * entry point certificates, which the gateway otherwise reads only when it opens its listeners).
 */
export async function checkConfigFile(path: string): Promise<CheckResult> {
  let text: string;
  let config: GatewayConfig;
  try {
    text = await readConfigText(path);
    config = parseLocated(path, text, {});
  } catch (error) {
    if (error instanceof GatewayConfigError) return { path, config: undefined, issues: error.issues };
    throw error;
  }
  const issues = await certificateIssues(config, text);
  return { path, config: issues.length === 0 ? config : undefined, issues };
}

/** Each entry point certificate pair that `loadCertificate` refuses, located at the key that names the bad file. */
async function certificateIssues(config: GatewayConfig, text: string): Promise<ConfigIssue[]> {
  const problems: { path: (string | number)[]; message: string }[] = [];
  for (const entryPoint of config.entryPoints) {
    const tls = entryPoint.tls;
    if (!tls) continue;
    const pairs: [(string | number)[], typeof tls.certificates[number]][] = tls.certificates.map((files, index) => [['entryPoints', entryPoint.name, 'tls', 'certificates', index], files]);
    if (tls.defaultCertificate) pairs.push([['entryPoints', entryPoint.name, 'tls', 'defaultCertificate'], tls.defaultCertificate]);
    for (const [keyPath, files] of pairs) {
      try {
        await loadCertificate(files, tls.minVersion);
      } catch (error) {
        if (!(error instanceof ConfigFileError)) throw error;
        const field = error.path === files.keyFile ? 'keyFile' : 'certFile';
        problems.push({ path: [...keyPath, field], message: `${error.path}: ${error.message.slice(error.path.length + 2)}` });
      }
    }
  }
  if (problems.length === 0) return [];
  const lines = new LineCounter();
  const document = parseDocument(text, { lineCounter: lines, merge: true });
  return locateIssues(problems.map((problem) => ({ code: 'custom' as const, path: problem.path, message: problem.message, input: undefined })), document, lines);
}

/** One line per issue, `<file>:<line>: <key path>: <reason>`, as compilers and linters print them. */
export function formatIssues(result: CheckResult): string {
  return result.issues
    .map((issue) => `${result.path}:${issue.line ?? '-'}: ${issue.keyPath || '(file)'}: ${issue.reason}\n`)
    .join('');
}
