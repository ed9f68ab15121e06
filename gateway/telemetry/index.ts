// What the gateway measures: request and upstream metrics, per-instance traffic, instance gauges, reloads.
export { accessLogDroppedTotal, collectProcessMetrics, configReloadsTotal, instancesGauge, logDroppedTotal, recordInstances, tlsHandshakeFailuresTotal, tlsReloadsTotal } from './gateway-metrics.ts';
export { InstanceTraffic } from './instance-traffic.ts';
export type { TrafficCounts } from './instance-traffic.ts';
export { CellCounter, CellHistogram, HistogramCell } from './metric-cells.ts';
export type { CounterCell } from './metric-cells.ts';
export { REQUEST_DURATION_BUCKETS_S, RequestMetrics, requestDurationSeconds, requestsTotal, STATUS_CLASSES, statusClassIndex, upstreamErrorsTotal } from './request-metrics.ts';
export { addCounts, emptyCounts, FLOW_RING_SECONDS, FlowSeries } from './flow-series.ts';
export type { FlowCounts, FlowKind } from './flow-series.ts';
export { FLOW_MAX_SERIES, FLOW_OVERFLOW_NAME, flowKey, FlowStats } from './flow-stats.ts';
export type { FlowSink, FlowStatsOptions, WireFlowEntry } from './flow-stats.ts';
export { emptyTotals, MemoryFlowStore } from './flow-store.ts';
export type { FlowStore, FlowTotals } from './flow-store.ts';
export { RedisFlowStore, flowStoreFailuresTotal } from './flow-store-redis.ts';
export type { RedisFlowStoreOptions } from './flow-store-redis.ts';
export { SwitchableFlowStore } from './flow-store-switch.ts';
export { forgetServiceSeries } from './service-series.ts';
export { tcpBytesTotal, tcpConnectionsOpen, tcpConnectionsTotal, tcpErrorsTotal, tcpServiceCells } from './tcp-metrics.ts';
export type { TcpServiceCells } from './tcp-metrics.ts';
