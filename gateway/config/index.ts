// The gateway configuration file: load and watch it, its resolved types, and converters to the core's options.
export { retryConditionOf, serviceBalancerOptions, serviceSettings, staticInstanceLists, upstreamPolicy } from './convert.ts';
export type { UpstreamPolicy } from './convert.ts';
export * from './defaults.ts';
export { ipRangeMatcher, isLoopbackHost, parseIpRanges, plainIp } from './ip-range.ts';
export type { IpRange } from './ip-range.ts';
export type { ConfigIssue } from './issues.ts';
export { GatewayConfigError, loadConfig, parseConfig } from './load.ts';
export { RETRY_CONDITIONS } from './schema-service.ts';
export type {
  AdminSettings,
  CertificateFiles,
  EntryPointConfig,
  EntryPointTls,
  ForwardingSettings,
  GatewayConfig,
  HeaderPolicy,
  HealthCheckSettings,
  HostHeaderPolicy,
  ListenAddress,
  NamespaceRouteConfig,
  OutlierDetectionSettings,
  PathSettings,
  RegistryConfig,
  RemovalProtectionSettings,
  RetryCondition,
  RetryPolicy,
  RouteConfig,
  ServerLimits,
  ServiceRouteConfig,
  ServiceSettings,
  ShutdownSettings,
  StaticInstance,
  UpstreamTimeouts,
} from './types.ts';
export { CONFIG_DEBOUNCE_MS, watchConfig } from './watch.ts';
export type { ConfigResult, WatchConfigOptions } from './watch.ts';
