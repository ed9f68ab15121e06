import { afterEach } from 'vitest';

/** What a test started and must stop: `push` a step that undoes it. */
export interface Cleanups {
  push(step: () => Promise<unknown>): void;
}

/**
 * Registers, in the file or describe block it is called in, an afterEach that runs the steps its
 * tests pushed, the last pushed first, each once; a step that fails does not keep the next from running.
 */
export function cleanupsAfterEach(): Cleanups {
  const steps: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const step of steps.splice(0).reverse()) await step().catch(() => undefined);
  });
  return { push: (step) => void steps.push(step) };
}
