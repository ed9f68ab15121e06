import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';

/**
 * Writes `textOf(n)` to `file` (one write each; `append` adds instead) every ~5 ms until `stop()`,
 * which resolves once the last write is done: a writer faster than any watch's quiet time, whose
 * events alone never let a debounce end.
 */
export function keepWriting(file: string, textOf: (n: number) => string, append = false): { stop(): Promise<void> } {
  let writing = true;
  const writer = (async () => {
    for (let n = 0; writing; n += 1) {
      await writeFile(file, textOf(n), append ? { flag: 'a' } : {});
      await delay(5);
    }
  })();
  return {
    stop: () => {
      writing = false;
      return writer;
    },
  };
}

/** The writer of `keepWritingApart`, run by `node -e`: its file is argv[1], its text comes in JSON lines on stdin. */
const APART_WRITER = `
const { writeFileSync } = require('node:fs');
const file = process.argv[1];
let text;
let stopping = false;
let pending = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  pending += chunk;
  for (let end = pending.indexOf('\\n'); end >= 0; end = pending.indexOf('\\n')) {
    const message = JSON.parse(pending.slice(0, end));
    pending = pending.slice(end + 1);
    if (message.stop) stopping = true;
    else text = message.text;
  }
});
process.stdin.on('end', () => (stopping = true));
const tick = () => {
  if (text !== undefined) writeFileSync(file, text);
  if (stopping) process.exit(0);
  setTimeout(tick, 5);
};
tick();
`;

/**
 * `keepWriting` in a process of its own, writing `text` (then what `write` gives) every ~5 ms until
 * `stop()`, which resolves once it has written its last and exited: a stall of the test's own
 * process (a GC pause, a loaded machine) pauses none of the writes, so a file that must never stay
 * the same for a settle time (150 ms) does not settle meanwhile.
 */
export function keepWritingApart(file: string, text: string): { write(text: string): void; stop(): Promise<void> } {
  const writer = spawn(process.execPath, ['-e', APART_WRITER, file], { stdio: ['pipe', 'ignore', 'inherit'] });
  const exited = new Promise<void>((resolve) => writer.once('exit', () => resolve()));
  // A line sent as it exits (a stop after a failure) finds the pipe closed: nothing is lost.
  writer.stdin.on('error', () => undefined);
  const send = (message: { text: string } | { stop: true }) => void writer.stdin.write(`${JSON.stringify(message)}\n`);
  send({ text });
  return {
    write: (next) => send({ text: next }),
    stop: () => {
      if (writer.exitCode === null && writer.signalCode === null) send({ stop: true });
      return exited;
    },
  };
}
