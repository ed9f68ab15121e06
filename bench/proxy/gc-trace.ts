import type { Readable } from 'node:stream';

/** Garbage collections a process reported with `--trace-gc` so far (counts and summed pauses in ms). */
export interface GcCounts {
  scavenges: number;
  scavengeMs: number;
  markCompacts: number;
  markCompactMs: number;
}

// `[pid:0x…]  123 ms: Scavenge 3.9 (4.0) -> 3.0 (5.0) MB, 2.63 / 0.00 ms  (…` on Node 20; Node 24 adds
// `(interleaved)` and `pooled: 0 MB,` before the pause. The pause is the first `<ms> / <ms> ms`.
const TRACE_LINE = /ms: (Scavenge|Mark-Compact|Mark-Compact \(reduce\)|Mark-sweep)[^\n]*? ([0-9.]+) \/ [0-9.]+ ms/g;

/**
 * Counts the `--trace-gc` lines in a process's stdout (which also carries its access log); the counts
 * read at any time are the totals so far. Lines split across chunks are joined at the last newline.
 */
export function countGcTrace(stdout: Readable): GcCounts {
  const counts: GcCounts = { scavenges: 0, scavengeMs: 0, markCompacts: 0, markCompactMs: 0 };
  let rest = '';
  stdout.setEncoding('latin1');
  stdout.on('data', (chunk: string) => {
    const text = rest + chunk;
    const end = text.lastIndexOf('\n');
    rest = text.slice(end + 1);
    // Most chunks are access-log lines only: skip them without running the expression.
    if (!text.includes(' ms: ')) return;
    for (const match of text.slice(0, end + 1).matchAll(TRACE_LINE)) {
      const pause = Number(match[2]);
      if (match[1] === 'Scavenge') {
        counts.scavenges += 1;
        counts.scavengeMs += pause;
      } else {
        counts.markCompacts += 1;
        counts.markCompactMs += pause;
      }
    }
  });
  return counts;
}

/** The difference `after − before` of two readings of the same counter. */
export function gcDelta(after: GcCounts, before: GcCounts): GcCounts {
  return {
    scavenges: after.scavenges - before.scavenges,
    scavengeMs: after.scavengeMs - before.scavengeMs,
    markCompacts: after.markCompacts - before.markCompacts,
    markCompactMs: after.markCompactMs - before.markCompactMs,
  };
}
