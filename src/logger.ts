import { pino, type Logger } from 'pino';
import { prettySink, wantsColor, type LineSink } from './log-pretty.ts';

export type { Logger };

/**
 * Where the root logger writes. Every logger is a child of one root created at import time, so the
 * format is switched by swapping the sink behind it rather than by rebuilding loggers.
 */
const sink: { target: LineSink; write(text: string): unknown } = {
  target: pino.destination(2),
  write(text: string) {
    return this.target.write(text);
  },
};

/**
 * The process-wide root logger: JSON lines on stderr, level from `SWITCHBOARD_LOG_LEVEL`
 * (`info` by default, `silent` under vitest unless set).
 */
export const rootLogger: Logger = pino(
  {
    name: 'switchboard',
    level: process.env.SWITCHBOARD_LOG_LEVEL ?? (process.env.VITEST ? 'silent' : 'info'),
  },
  sink,
);

/** A child logger tagged with the component name. */
export function componentLogger(component: string, bindings: Record<string, unknown> = {}): Logger {
  return rootLogger.child({ component, ...bindings });
}

/**
 * Switches every logger to human-readable lines on stderr (`--pretty`), coloured on a terminal.
 * Call it once, early; lines already written stay JSON.
 */
export function usePrettyLogs(): void {
  sink.target = prettySink(process.stderr, { color: wantsColor(process.stderr) });
}
