// The gateway configuration file: load and watch it, its resolved types, and converters to the core's options.
export { servicesNamedIn } from './named-services.ts';
export { retryConditionOf, serviceBalancerOptions, serviceSettings, staticInstanceLists, stickyCookieName, upstreamConnection, upstreamPolicy } from './convert.ts';
export type { UpstreamConnection, UpstreamPolicy } from './convert.ts';
export * from './defaults.ts';
export { ipRangeMatcher, isLoopbackHost, parseIpRanges, plainIp } from './ip-range.ts';
export type { IpRange } from './ip-range.ts';
export type { ConfigIssue } from './issues.ts';
export { GatewayConfigError, loadConfig, parseConfig, parseRefusedConfigSettled } from './load.ts';
export type { ParseConfigOptions } from './load.ts';
export { PemFile } from './upstream-tls-files.ts';
export type { UpstreamTlsFiles } from './upstream-tls-files.ts';
export { RETRY_CONDITIONS, UPSTREAM_PROTOCOLS } from './schema-service.ts';
export type { BreakerFallback, BreakerThresholds, CircuitBreakerSettings, ConcurrencyLimits, RetryBudgetSettings } from './types-breaker.ts';
export { DEFAULT_CIRCUIT_BREAKER, DEFAULT_CONCURRENCY, DEFAULT_RETRY_BUDGET } from './resolve-breaker.ts';
export type {
  ConfigStoreSettings,
  AdminSettings,
  CanaryLaneRouting,
  CanaryRouting,
  CertificateFiles,
  EntryPointConfig,
  EntryPointTls,
  ForwardingSettings,
  GatewayConfig,
  HeaderPolicy,
  HealthCheckSettings,
  HostHeaderPolicy,
  ListenAddress,
  MetadataSelector,
  MirrorRouting,
  NamespaceRouteConfig,
  OutlierDetectionSettings,
  PathSettings,
  ProxyProtocolVersion,
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
  StickyCookie,
  StickySettings,
  TracingSettings,
  SubsetFallback,
  SubsetRouting,
  TcpEntryPointSettings,
  UpstreamProtocol,
  UpstreamTimeouts,
  UpstreamTlsSettings,
} from './types.ts';
export { CONFIG_DEBOUNCE_MS, watchConfig } from './watch.ts';
export type { ConfigResult, WatchConfigOptions } from './watch.ts';
