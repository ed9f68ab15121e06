// What the gateway measures: request and upstream metrics, per-instance traffic, instance gauges, reloads.
export { accessLogDroppedTotal, collectProcessMetrics, configReloadsTotal, instancesGauge, recordInstances, tlsReloadsTotal } from './gateway-metrics.ts';
export { InstanceTraffic } from './instance-traffic.ts';
export type { TrafficCounts } from './instance-traffic.ts';
export { CellCounter, CellHistogram, HistogramCell } from './metric-cells.ts';
export type { CounterCell } from './metric-cells.ts';
export { REQUEST_DURATION_BUCKETS_S, RequestMetrics, requestDurationSeconds, requestsTotal, STATUS_CLASSES, statusClassIndex, upstreamErrorsTotal } from './request-metrics.ts';
export { tcpBytesTotal, tcpConnectionsOpen, tcpConnectionsTotal, tcpErrorsTotal, tcpServiceCells } from './tcp-metrics.ts';
export type { TcpServiceCells } from './tcp-metrics.ts';
