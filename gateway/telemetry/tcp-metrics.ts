import { Gauge } from 'prom-client';
import { metricsRegistry } from '../../src/metrics.ts';
import { CellCounter, type CounterCell } from './metric-cells.ts';

/** TCP connections open now, by service (summed over workers). */
export const tcpConnectionsOpen = new Gauge({
  name: 'switchboard_tcp_connections_open',
  help: 'Client connections of tcp entry points forwarded to an upstream and open now, by service.',
  labelNames: ['service'] as const,
  registers: [metricsRegistry],
  aggregator: 'sum',
});

/** TCP connections accepted, by service, whatever became of them. */
export const tcpConnectionsTotal = new CellCounter<'service'>(
  'switchboard_tcp_connections_total',
  'Client connections accepted by tcp entry points, by service (forwarded or not).',
  ['service'],
  metricsRegistry,
);

/** Bytes forwarded, by service and direction: `in` from clients to upstreams, `out` back to clients. */
export const tcpBytesTotal = new CellCounter<'service' | 'direction'>(
  'switchboard_tcp_bytes_total',
  'Bytes forwarded by tcp entry points, by service and direction (in: client to upstream, out: upstream to client).',
  ['service', 'direction'],
  metricsRegistry,
);

/** Failures of tcp connections and of their upstream attempts, by service and class. */
export const tcpErrorsTotal = new CellCounter<'service' | 'class'>(
  'switchboard_tcp_errors_total',
  'Failed upstream connects (each retry counts), connections no instance could take, resets, idle timeouts and drain-deadline cuts of tcp entry points, by service and class.',
  ['service', 'class'],
  metricsRegistry,
);

/** The series of one service, looked up once per connection. */
export interface TcpServiceCells {
  readonly connections: CounterCell;
  readonly bytesIn: CounterCell;
  readonly bytesOut: CounterCell;
  opened(): void;
  closed(): void;
  error(errorClass: string): void;
}

const byService = new Map<string, TcpServiceCells>();

/** The metric series of `service` (made on first use, then shared by every tcp entry point of this process). */
export function tcpServiceCells(service: string): TcpServiceCells {
  let cells = byService.get(service);
  if (!cells) {
    const open = tcpConnectionsOpen.labels({ service });
    const errors = new Map<string, CounterCell>();
    const own = () => byService.get(service) === cells;
    cells = {
      connections: tcpConnectionsTotal.cell({ service }),
      bytesIn: tcpBytesTotal.cell({ service, direction: 'in' }),
      bytesOut: tcpBytesTotal.cell({ service, direction: 'out' }),
      // A connection that outlives the forgetting of its service leaves the new gauge alone (it would go negative).
      opened: () => {
        if (own()) open.inc();
      },
      closed: () => {
        if (own()) open.dec();
      },
      error(errorClass) {
        let cell = errors.get(errorClass);
        if (!cell) {
          cell = tcpErrorsTotal.cell({ service, class: errorClass });
          errors.set(errorClass, cell);
        }
        cell.value += 1;
      },
    };
    byService.set(service, cells);
  }
  return cells;
}

/**
 * Drops the series kept for `service` (a forgotten service, whose series `forgetServiceSeries` has
 * removed), so that a connection of a service of that name later counts in new series; connections
 * still open keep their cells, which are no longer reported and no longer move the open gauge.
 */
export function forgetTcpServiceCells(service: string): void {
  byService.delete(service);
}
