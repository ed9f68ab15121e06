import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WorkerQuestions } from './cluster-questions.ts';

describe('WorkerQuestions', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('resolves as soon as every expected worker answered its question, and keeps two questions apart', async () => {
    const questions = new WorkerQuestions<string>();
    const sent: number[] = [];
    const first = questions.ask(2, (id) => sent.push(id), 2_000);
    const second = questions.ask(1, (id) => sent.push(id), 2_000);
    expect(new Set(sent).size).toBe(2);
    questions.answered(sent[0]!, 'a');
    questions.answered(sent[1]!, 'x');
    questions.answered(sent[0]!, 'b');
    // No timer needed: both are complete.
    expect(await second).toEqual(['x']);
    expect(await first).toEqual(['a', 'b']);
  });

  it('resolves with the answers in by the bound when a worker never answers, and drops an answer after it', async () => {
    const questions = new WorkerQuestions<number>();
    let id = 0;
    let settled = false;
    const asked = questions.ask(2, (given) => (id = given), 2_000);
    void asked.then(() => (settled = true));
    questions.answered(id, 3);
    await vi.advanceTimersByTimeAsync(1_999);
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(await asked).toEqual([3]);
    questions.answered(id, 4);
    expect(await asked).toEqual([3]);
  });

  it('resolves at once with no answers when no worker is asked', async () => {
    const questions = new WorkerQuestions<number>();
    expect(await questions.ask(0, () => undefined, 60_000)).toEqual([]);
  });
});
