export { ActiveHealthChecker, DEFAULT_CHECK_INTERVAL_MS, DEFAULT_CHECK_TIMEOUT_MS, DEFAULT_HEALTHY_THRESHOLD, DEFAULT_UNHEALTHY_THRESHOLD } from './active-checker.ts';
export type { ActiveCheckOptions } from './active-checker.ts';
export { DEFAULT_PANIC_THRESHOLD_PERCENT, DEFAULT_REMOVAL_GRACE_MS, EndpointSet } from './endpoint-set.ts';
export { isHealthy } from './endpoint-verdict.ts';
export type { DepartedHealth, EndpointSetOptions } from './endpoint-set.ts';
export type { ActiveHealth, EndpointHealth, HealthSnapshot, HealthView } from './health-view.ts';
export {
  DEFAULT_BASE_EJECTION_MS,
  DEFAULT_CONSECUTIVE_ERRORS,
  DEFAULT_EJECTION_DECAY_INTERVAL_MS,
  DEFAULT_MAX_EJECTION_MS,
  DEFAULT_MAX_EJECTION_PERCENT,
  OutlierDetector,
} from './outlier-detector.ts';
export type { EjectionHistory, OutlierDetectionOptions } from './outlier-detector.ts';
export { grpcProbe } from './probe-grpc.ts';
export type { GrpcProbeOptions } from './probe-grpc.ts';
export { httpProbe } from './probe-http.ts';
export type { HttpProbeOptions, ProbeTlsOptions, StatusRange } from './probe-http.ts';
export { tcpProbe } from './probe-tcp.ts';
export { probeOnPort, probeSpeaking } from './probe.ts';
export type { HealthProbe, ProbeResult, ProbeTarget } from './probe.ts';
export { isGatewayResourceCode, isNotUpstreamFault, isUpstreamFailure } from './upstream-outcome.ts';
export type { NotUpstreamFaultClass, UpstreamErrorClass, UpstreamOutcome } from './upstream-outcome.ts';
