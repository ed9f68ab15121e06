import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * The process-wide root logger: JSON lines on stderr, level from `SWITCHBOARD_LOG_LEVEL`
 * (`info` by default, `silent` under vitest unless set).
 */
export const rootLogger: Logger = pino(
  {
    name: 'switchboard',
    level: process.env.SWITCHBOARD_LOG_LEVEL ?? (process.env.VITEST ? 'silent' : 'info'),
  },
  pino.destination(2),
);

/** A child logger tagged with the component name. */
export function componentLogger(component: string, bindings: Record<string, unknown> = {}): Logger {
  return rootLogger.child({ component, ...bindings });
}
