import { GatewayConfigError, parseLocated, readConfigText } from '../config/load.ts';
import type { ConfigIssue } from '../config/issues.ts';
import type { GatewayConfig } from '../config/types.ts';

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
 * entry point and named certificates) by the same checks a load and a reload make.
 */
export async function checkConfigFile(path: string): Promise<CheckResult> {
  try {
    return { path, config: parseLocated(path, await readConfigText(path), {}), issues: [] };
  } catch (error) {
    if (error instanceof GatewayConfigError) return { path, config: undefined, issues: error.issues };
    throw error;
  }
}

/** One line per issue, `<file>:<line>: <key path>: <reason>`, as compilers and linters print them. */
export function formatIssues(result: CheckResult): string {
  return result.issues
    .map((issue) => `${result.path}:${issue.line ?? '-'}: ${issue.keyPath || '(file)'}: ${issue.reason}\n`)
    .join('');
}
