// Entry points: the client-facing listeners (HTTP/1.1, h2c, HTTPS with SNI and HTTP/2 through ALPN).
export { startEntryPoint } from './entry-point.ts';
export type { EntryPoint } from './entry-point.ts';
export { startTcpEntryPoint } from './tcp-entry-point.ts';
export type { TcpConnectionHandler } from './tcp-entry-point.ts';
export { GatewayListener } from './http1-listener.ts';
export { answerHoldingSocket } from './http1-refusal.ts';
export type { ListenerHandlers, ListenerLimits } from './http1-listener.ts';
export type { ListenerRefusal } from './http1-refusal.ts';
export { listenOn } from './listen.ts';
export { SniTable } from './tls-sni.ts';
export type { SniEntry } from './tls-sni.ts';
export { NamedCertificates } from './tls-named.ts';
export { recordTlsRefusal } from './tls-refusals.ts';
