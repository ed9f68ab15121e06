// One transport per upstream protocol: HTTP/1.1 and HTTPS (undici), h2c and h2 (node:http2), the
// WebSocket handshake, and the keyed set of them the proxy picks from per attempt.
export type { AttemptReceiver, AttemptResult, AttemptTimeouts, Transport, TransportSettings, UpstreamTlsOptions } from './transport.ts';
export { DEFAULT_POOL_SETTINGS, Http1Transport } from './transport-http1.ts';
export type { PoolSettings } from './transport-http1.ts';
export { Http2Transport } from './transport-http2.ts';
export { UnsupportedProtocolError, UpstreamTransports } from './upstream-transports.ts';
