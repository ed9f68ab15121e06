import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { OutageLog } from './outage-log.ts';

function logged() {
  const lines: Array<{ level: number; msg: string; err?: string; failingForMs?: number; failures?: number; outageMs?: number }> = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) });
  return { lines, log };
}

const LEVELS: Record<number, string> = { 20: 'debug', 30: 'info', 40: 'warn' };

describe('OutageLog', () => {
  it('warns at the first failure, logs the retries at debug, reminds at a doubling interval and says once when it is over', () => {
    const { lines, log } = logged();
    const outage = new OutageLog(log, { failed: 'session ended', recovered: 'listed again' }, { firstMs: 1_000, maxMs: 3_000 });
    // Failures every 250 ms for 6 s: reminders at 1 s, then 2 s and 3 s (the cap) after the one before.
    for (let at = 0; at <= 6_000; at += 250) outage.failed({ endpoint: 'a' }, { now: at });
    expect(outage.failing).toBe(true);
    outage.recovered({}, 6_100);
    outage.recovered({}, 6_200);
    const warnings = lines.filter((line) => line.level === 40);
    expect(warnings.map((line) => line.failingForMs)).toEqual([undefined, 1_000, 3_000, 6_000]);
    expect(lines.filter((line) => line.level === 20)).toHaveLength(25 - 4);
    expect(lines.filter((line) => line.level === 30)).toMatchObject([{ msg: 'listed again', outageMs: 6_100, failures: 25 }]);
    expect(outage.failing).toBe(false);
    expect(new Set(lines.filter((line) => line.level !== 30).map((line) => line.msg))).toEqual(new Set(['session ended']));
  });

  it('starts over after a recovery: the next outage warns at its first failure again, with the first reminder interval', () => {
    const { lines, log } = logged();
    const outage = new OutageLog(log, { failed: 'session ended', recovered: 'listed again' }, { firstMs: 1_000, maxMs: 3_000 });
    for (let at = 0; at <= 3_000; at += 500) outage.failed({}, { now: at });
    outage.recovered({}, 3_100);
    for (let at = 10_000; at <= 11_000; at += 500) outage.failed({}, { now: at });
    expect(lines.map((line) => `${LEVELS[line.level]} ${line.failingForMs ?? ''}`.trim())).toEqual([
      'warn',
      'debug 500',
      'warn 1000',
      'debug 1500',
      'debug 2000',
      'debug 2500',
      'warn 3000',
      'info',
      'warn',
      'debug 500',
      'warn 1000',
    ]);
  });

  it('warns at once of a failure of another kind in an outage (a refused password once the server is back), however soon, and reminds from the first interval again', () => {
    const { lines, log } = logged();
    const outage = new OutageLog(log, { failed: 'session ended', recovered: 'listed again' }, { firstMs: 1_000, maxMs: 3_000 });
    for (let at = 0; at <= 2_000; at += 500) outage.failed({ err: `unreachable ${at}` }, { problem: 'unreachable', now: at });
    for (let at = 2_250; at <= 3_500; at += 250) outage.failed({ err: 'refused' }, { problem: 'refused', now: at });
    // The two kinds take turns (two endpoints): both are known by now, so they are retries, till the next reminder.
    for (let at = 3_750; at <= 4_500; at += 250) outage.failed({ err: at % 500 === 0 ? 'refused' : 'unreachable' }, { problem: at % 500 === 0 ? 'refused' : 'unreachable', now: at });
    expect(lines.filter((line) => line.level === 40).map((line) => [line.err, line.failingForMs])).toEqual([
      ['unreachable 0', undefined],
      ['unreachable 1000', 1_000],
      ['refused', 2_250],
      ['refused', 3_250],
    ]);
  });

  it('logs nothing on a success without an outage, nor a recovery line when it has none (a status change says so)', () => {
    const { lines, log } = logged();
    const outage = new OutageLog(log, { failed: 'session ended' });
    outage.recovered();
    outage.failed({});
    outage.recovered();
    expect(lines.map((line) => LEVELS[line.level])).toEqual(['warn']);
  });
});
