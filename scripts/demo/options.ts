import { SwitchboardError } from '../../src/errors.ts';

/** What the demo runs, read from `DEMO_*` environment variables (listed by `npm run demo -- --help`). */
export interface DemoOptions {
  /** Proxy port wanted on 127.0.0.1; a free one is used instead when it is taken. */
  readonly port: number;
  /** Admin API and dashboard port wanted on 127.0.0.1; a free one is used instead when it is taken. */
  readonly adminPort: number;
  /** ZooKeeper client port; 0 picks a free one. */
  readonly zooKeeperPort: number;
  /** The tcp entry point's port wanted on 127.0.0.1; a free one is used instead when it is taken. */
  readonly tcpPort: number;
  /** Demo requests per second sent through the gateway. */
  readonly requestsPerSecond: number;
  /** Time between churn steps (stop one backend, later restart it). */
  readonly churnMs: number;
  /** Stop by itself after this long once the cluster is up; undefined runs until Ctrl-C. */
  readonly durationMs: number | undefined;
  /** Keep the temporary directory (logs, ZooKeeper data) on exit. */
  readonly keepFiles: boolean;
}

/** A `DEMO_*` variable that cannot be used: the message names it and says what it must be. */
export class DemoOptionError extends SwitchboardError {
  constructor(variable: string, reason: string) {
    super('SB_DEMO_OPTION', `${variable}: ${reason}`);
  }
}

/** Reads the demo's options from `env`; throws `DemoOptionError` naming the first bad variable. */
export function demoOptionsFrom(env: NodeJS.ProcessEnv): DemoOptions {
  const duration = env.DEMO_DURATION_SECONDS;
  return {
    port: number(env, 'DEMO_PORT', 8080, 1, 65_535),
    adminPort: number(env, 'DEMO_ADMIN_PORT', 9180, 1, 65_535),
    zooKeeperPort: number(env, 'DEMO_ZK_PORT', 0, 0, 65_535),
    tcpPort: number(env, 'DEMO_TCP_PORT', 9000, 1, 65_535),
    requestsPerSecond: number(env, 'DEMO_RPS', 6, 1, 200),
    churnMs: number(env, 'DEMO_CHURN_SECONDS', 8, 1, 3_600) * 1_000,
    durationMs: duration === undefined || duration === '' ? undefined : number(env, 'DEMO_DURATION_SECONDS', 0, 1, 86_400) * 1_000,
    keepFiles: env.DEMO_KEEP_FILES === '1' || env.DEMO_KEEP_FILES === 'true',
  };
}

function number(env: NodeJS.ProcessEnv, variable: string, fallback: number, min: number, max: number): number {
  const text = env[variable];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) throw new DemoOptionError(variable, `"${text}" must be a whole number from ${min} to ${max}`);
  return value;
}
