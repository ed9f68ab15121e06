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
