/** The levels `SWITCHBOARD_LOG_LEVEL` may name, as pino knows them. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The level `value` (from `SWITCHBOARD_LOG_LEVEL`) names, in any case and with spaces around it;
 * `fallback` when it is unset or empty. A value that names no level gets `fallback` and a `problem`
 * to log: pino itself throws on it at start-up, a stack trace that ends the process over a typo.
 */
export function logLevelFrom(value: string | undefined, fallback: LogLevel): { level: LogLevel; problem?: string } {
  const wanted = value?.trim().toLowerCase() ?? '';
  if (wanted === '') return { level: fallback };
  if ((LOG_LEVELS as readonly string[]).includes(wanted)) return { level: wanted as LogLevel };
  return { level: fallback, problem: `SWITCHBOARD_LOG_LEVEL=${JSON.stringify(value)} is not one of ${LOG_LEVELS.join(', ')}; logging at ${fallback}` };
}
