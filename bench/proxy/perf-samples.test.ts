import { describe, expect, it } from 'vitest';
import { addReportLine, recordPerf, symbolName, type SymbolSamples } from './perf-samples.ts';

describe('recordPerf', () => {
  it('tells that perf is missing at stop(), not by an unhandled rejection that would skip the bench\'s cleanup', async () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    let recording: ReturnType<typeof recordPerf>;
    try {
      recording = recordPerf(process.pid, '/nonexistent/perf.data');
    } finally {
      process.env.PATH = path;
    }
    // The spawn failure is emitted on the next tick; a turn of the event loop lets it go unheard, as during a run.
    await new Promise((resolve) => setImmediate(resolve));
    await expect(recording.stop()).rejects.toThrow(/^perf record could not start \(spawn perf ENOENT\): BENCH_PERF=1 needs perf/);
  });
});

describe('perf report lines', () => {
  it('sums samples by symbol, without file and position, and tells the kind of code by the object and level', () => {
    const into: SymbolSamples = new Map();
    for (const line of [
      '   304  node              [.] Builtins_KeyedLoadIC_Megamorphic',
      '   120  [kernel.kallsyms] [k] tcp_sendmsg',
      '    40  perf-123.map      [.] JS:*writeH1 file:///repo/dist/switchboard.js:23241:21',
      '     2  perf-123.map      [.] JS:^writeH1 /repo/node_modules/undici/lib/client-h1.js:1:2',
      '     7  libc.so.6         [.] __memmove_avx_unaligned_erms',
      'not a report line',
    ]) addReportLine(line, into);
    expect(Object.fromEntries(into)).toEqual({
      Builtins_KeyedLoadIC_Megamorphic: { kind: 'node and V8 (native)', samples: 304 },
      tcp_sendmsg: { kind: 'kernel', samples: 120 },
      'JS:writeH1': { kind: 'JavaScript (JIT)', samples: 42 },
      __memmove_avx_unaligned_erms: { kind: 'libc', samples: 7 },
    });
    expect(symbolName('JS:~handle node:internal/streams:12:3')).toBe('JS:handle');
  });
});
