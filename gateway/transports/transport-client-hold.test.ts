import { describe, expect, it } from 'vitest';
import { ClientHold, SLOW_READ_HOLD_MS } from './transport-client-hold.ts';

/** What `hold` makes of a `reset-after-headers` at `now`. */
const breakAt = (hold: ClientHold, now: number) => hold.classOf('reset-after-headers', now);

describe('ClientHold', () => {
  it.each([
    { case: 'a break during a hold that has lasted the whole threshold', holds: [[0, undefined]], at: SLOW_READ_HOLD_MS, excused: true },
    { case: 'a break during a hold shorter than the threshold', holds: [[0, undefined]], at: SLOW_READ_HOLD_MS - 1, excused: false },
    { case: 'a break long after a hold of the whole threshold ended (what the upstream wrote before its close comes first)', holds: [[0, SLOW_READ_HOLD_MS]], at: 60_000, excused: true },
    { case: 'a break after many short holds, however long in all', holds: [[0, 900], [1_000, 1_900], [2_000, 2_900]], at: 3_000, excused: false },
    { case: 'a break during a short hold that follows a long one', holds: [[0, 1_500], [2_000, undefined]], at: 2_010, excused: true },
    { case: 'a hold begun again while it runs, which keeps its start', holds: [[0, undefined], [800, undefined]], at: SLOW_READ_HOLD_MS, excused: true },
  ] as const)('excuses $case: $excused', ({ holds, at, excused }) => {
    const hold = new ClientHold();
    for (const [begun, ended] of holds) {
      hold.begin(begun);
      if (ended !== undefined) hold.end(ended);
    }
    expect(breakAt(hold, at)).toBe(excused ? 'client-slow-read' : 'reset-after-headers');
  });

  it('over HTTP/2 (no after-hold excuse) excuses a break during a long hold only, not one after it ended', () => {
    const hold = new ClientHold(false);
    hold.begin(0);
    expect(breakAt(hold, SLOW_READ_HOLD_MS)).toBe('client-slow-read');
    hold.end(2 * SLOW_READ_HOLD_MS);
    expect(breakAt(hold, 60_000)).toBe('reset-after-headers');
    hold.begin(61_000);
    expect(breakAt(hold, 61_010)).toBe('reset-after-headers');
  });

  it.each(['reset-before-headers', 'body-timeout', 'cancelled', 'internal'] as const)('leaves a %s alone, even after a long hold', (errorClass) => {
    const hold = new ClientHold();
    hold.begin(0);
    hold.end(10 * SLOW_READ_HOLD_MS);
    expect(hold.classOf(errorClass, 20 * SLOW_READ_HOLD_MS)).toBe(errorClass);
  });

  it.each([
    { case: 'a chunk size the parser refused', error: Object.assign(new Error('Invalid character in chunk size'), { name: 'HTTPParserError', code: 'HPE_INVALID_CHUNK_SIZE' }) },
    { case: 'a bad TLS record', error: Object.assign(new Error('decryption failed or bad record mac'), { code: 'ERR_SSL_DECRYPTION_FAILED_OR_BAD_RECORD_MAC' }) },
  ])('leaves $case the instance\'s, even during a long hold: a send timeout closes, it does not garble', ({ error }) => {
    const hold = new ClientHold();
    hold.begin(0);
    expect(hold.classOf('reset-after-headers', 2 * SLOW_READ_HOLD_MS, error)).toBe('reset-after-headers');
    expect(hold.classOf('reset-after-headers', 2 * SLOW_READ_HOLD_MS, Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }))).toBe('client-slow-read');
  });
});
