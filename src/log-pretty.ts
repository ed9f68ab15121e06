// Human-readable log lines for `--pretty`: a small formatter over pino's JSON lines rather than the
// pino-pretty package, which brings a dozen transitive dependencies for what fits on one screen.

/** How `formatLogLine` renders. */
export interface PrettyOptions {
  /** ANSI colours for levels; the caller decides (a TTY and no `NO_COLOR`). */
  readonly color: boolean;
}

/** Something lines can be written to: a stream or pino's SonicBoom. */
export interface LineSink {
  write(text: string): unknown;
}

const LEVELS: Readonly<Record<number, [label: string, color: string]>> = {
  10: ['TRACE', '\u001b[90m'],
  20: ['DEBUG', '\u001b[90m'],
  30: ['INFO ', '\u001b[32m'],
  40: ['WARN ', '\u001b[33m'],
  50: ['ERROR', '\u001b[31m'],
  60: ['FATAL', '\u001b[35m'],
};
const RESET = '\u001b[0m';
const DIM = '\u001b[2m';
/** Fields shown in the line's head, or that say nothing a reader needs. */
const HEAD_FIELDS = new Set(['level', 'time', 'msg', 'component', 'pid', 'hostname', 'name', 'v']);

/**
 * Formats one pino JSON line as `HH:MM:SS.mmm LEVEL component: message key=value …`; an access-log
 * line (no message, but method and status) reads `GET /path 200 3.1ms` before its other fields.
 * Text that is not a JSON object passes through unchanged.
 */
export function formatLogLine(line: string, options: PrettyOptions): string {
  let record: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return line.endsWith('\n') ? line : `${line}\n`;
    record = parsed as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const [label, color] = LEVELS[Number(record.level)] ?? ['INFO ', ''];
  const paint = (text: string, code: string) => (options.color && code ? `${code}${text}${RESET}` : text);
  const parts = [paint(clock(record.time), DIM), paint(label, color)];
  if (typeof record.component === 'string') parts.push(`${record.component}:`);
  const shown = new Set(HEAD_FIELDS);
  if (typeof record.msg === 'string') parts.push(record.msg);
  else if (record.method !== undefined && record.status !== undefined) {
    parts.push(`${String(record.method)} ${String(record.path ?? '')} ${String(record.status)} ${String(record.durationMs ?? '?')}ms`);
    for (const key of ['method', 'path', 'status', 'durationMs']) shown.add(key);
  }
  for (const [key, value] of Object.entries(record)) {
    if (shown.has(key) || value === undefined) continue;
    parts.push(paint(`${key}=`, DIM) + fieldText(value));
  }
  return `${parts.join(' ')}\n`;
}

/** A sink that writes to `out` what `formatLogLines` makes of each write: nothing for one of no lines. */
export function prettySink(out: LineSink, options: PrettyOptions): LineSink {
  return {
    write(text: string) {
      const formatted = formatLogLines(text, options);
      if (formatted !== '') out.write(formatted);
      return true;
    },
  };
}

/** `formatLogLine` over each line of `text` (pino writes one line per call; a batch cannot glue two lines this way). */
export function formatLogLines(text: string, options: PrettyOptions): string {
  let formatted = '';
  for (const line of text.split('\n')) if (line !== '') formatted += formatLogLine(line, options);
  return formatted;
}

/** Whether `--pretty` output to `stream` should be coloured: a terminal, and `NO_COLOR` not set (no-color.org). */
export function wantsColor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  return stream.isTTY === true && !env.NO_COLOR;
}

function clock(time: unknown): string {
  const date = typeof time === 'number' || typeof time === 'string' ? new Date(time) : new Date();
  if (Number.isNaN(date.getTime())) return String(time);
  const pad = (value: number, width = 2) => String(value).padStart(width, '0');
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

function fieldText(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'object' && value !== null && 'message' in value && typeof (value as { message: unknown }).message === 'string') {
    return JSON.stringify((value as { message: string }).message);
  }
  return JSON.stringify(value);
}
