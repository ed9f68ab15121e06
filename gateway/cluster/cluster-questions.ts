/**
 * Questions the primary broadcasts to its workers, each answered by a message that carries the
 * question's id, gathered within a bound: the answer to a caller never waits on a worker that is
 * stuck or gone, and one after the bound is dropped. `/metrics` and a cache purge ask this way.
 */
export class WorkerQuestions<T> {
  private lastId = 0;
  private readonly pending = new Map<number, (answer: T) => void>();

  /**
   * Sends one question through `send` (which gets its id) and resolves with the answers as soon as
   * `expected` have come, or with those in by `timeoutMs`; never rejects. `expected` is the number
   * of workers `send` reaches.
   */
  ask(expected: number, send: (id: number) => void, timeoutMs: number): Promise<T[]> {
    const id = (this.lastId += 1);
    return new Promise((resolve) => {
      const received: T[] = [];
      const done = () => {
        clearTimeout(timer);
        this.pending.delete(id);
        resolve(received);
      };
      const timer = setTimeout(done, timeoutMs);
      this.pending.set(id, (answer) => {
        received.push(answer);
        if (received.length >= expected) done();
      });
      send(id);
      if (expected === 0) done();
    });
  }

  /** A worker's answer to question `id`; dropped once that question is done (all in, or its time up). */
  answered(id: number, answer: T): void {
    this.pending.get(id)?.(answer);
  }
}
