import { pino, type Logger } from 'pino';
import { logLevelFrom } from './log-level.ts';
import { prettySink, wantsColor, type LineSink } from './log-pretty.ts';

export type { Logger };

/** A line sink that may hold lines back, and then says how to write them before exit. */
export type ClosableSink = LineSink & { close?(deadlineMs?: number): Promise<void> };

/**
 * Where the root logger writes. Every logger is a child of one root created at import time, so the
 * format and the destination are switched by swapping the sink behind it rather than by rebuilding
 * loggers.
 *
 * By default each line is written to stderr synchronously: nothing is left to flush at exit, and
 * the descriptor stays as it was, which matters to the agent, whose backend shares it. (pino's
 * asynchronous destination flushed at exit in a loop that retried any error but EAGAIN every 100 ms:
 * with the reader of stderr gone, EPIPE held the process forever, past every shutdown bound.) The
 * gateway swaps in a buffered destination that never blocks (`useLogSink`).
 */
const sink: { target: ClosableSink; write(text: string): unknown } = {
  target: pino.destination({ dest: 2, sync: true }),
  write(text: string) {
    // A line that cannot be written is lost, not thrown at whoever logged it: the synchronous
    // destination throws EIO once the terminal it writes to has hung up, and the agent must still
    // drain and deregister after that hangup (registry-agent/main.ts).
    try {
      return this.target.write(text);
    } catch {
      return false;
    }
  },
};

const configuredLevel = logLevelFrom(process.env.SWITCHBOARD_LOG_LEVEL, process.env.VITEST ? 'silent' : 'info');

/**
 * The process-wide root logger: JSON lines on stderr, level from `SWITCHBOARD_LOG_LEVEL` in any case
 * (`info` by default, `silent` under vitest unless set; a value that names no level is warned of and ignored).
 */
export const rootLogger: Logger = pino({ name: 'switchboard', level: configuredLevel.level }, sink);
if (configuredLevel.problem !== undefined) rootLogger.warn(configuredLevel.problem);

/** A child logger tagged with the component name. */
export function componentLogger(component: string, bindings: Record<string, unknown> = {}): Logger {
  return rootLogger.child({ component, ...bindings });
}

/** Sends every logger's lines to `target` from now on (lines already written stay where they went). */
export function useLogSink(target: ClosableSink): void {
  sink.target = target;
}

/** Writes what the sink still holds, for at most `deadlineMs`: call it before `process.exit`. */
export async function closeLogs(deadlineMs = 1_000): Promise<void> {
  await sink.target.close?.(deadlineMs);
}

/**
 * Switches every logger to human-readable lines on stderr (`--pretty`), coloured on a terminal.
 * Call it once, early; lines already written stay JSON.
 */
export function usePrettyLogs(): void {
  useLogSink(prettySink(process.stderr, { color: wantsColor(process.stderr) }));
}
