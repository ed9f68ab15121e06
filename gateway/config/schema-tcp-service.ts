/** What the checks of services behind tcp entry points read of an entry point. */
export type TcpEntryPointLayer = { readonly protocol?: string | undefined; readonly service?: string | undefined; readonly sni?: Readonly<Record<string, string>> | undefined; readonly passthrough?: boolean | undefined; readonly tls?: object | undefined } | null;

/**
 * Every service a tcp entry point forwards to (its `service` and its `sni` table's), each with the
 * first such entry point's name; `terminatingOnly` keeps those of entry points that terminate TLS
 * (with `tls`), which forward the decrypted bytes.
 */
export function tcpServicesOf(entryPoints: Readonly<Record<string, TcpEntryPointLayer>> | undefined, terminatingOnly = false): Map<string, string> {
  const services = new Map<string, string>();
  for (const [name, entryPoint] of Object.entries(entryPoints ?? {})) {
    if (entryPoint?.protocol !== 'tcp' || (terminatingOnly && entryPoint.tls === undefined)) continue;
    for (const service of [...(entryPoint.service === undefined ? [] : [entryPoint.service]), ...Object.values(entryPoint.sni ?? {})]) {
      if (!services.has(service)) services.set(service, name);
    }
  }
  return services;
}

/** Service protocols whose instances speak TLS on their port. */
const TLS_PROTOCOLS: ReadonlySet<string> = new Set(['https', 'h2', 'grpcs']);

type TlsLayer = {
  readonly protocol?: string | undefined;
  readonly tls?: object | undefined;
  readonly healthCheck?: boolean | { readonly protocol?: string | undefined } | undefined;
};

/**
 * Upstream TLS on a service that a tcp entry point terminating TLS (with `tls`) forwards to: the
 * gateway decrypts and forwards clear bytes, never TLS, so a `protocol` whose instances speak TLS
 * (`https`, `h2`, `grpcs`) would send them clear bytes, and `tls` would be ignored, unless the
 * service's own health check speaks TLS (a management port's https check reads it). Judged on the
 * service's own keys only: `defaults` serve the HTTP services too. A plain or passthrough entry point
 * is left alone: it forwards the client's own bytes, often TLS end to end, which `protocol: https`
 * rightly describes. A service that HTTP routes also use is refused as well (the routes would speak
 * TLS, the entry point would not), and the message says so.
 */
export function tcpServiceTlsIssues(
  config: {
    readonly services?: Readonly<Record<string, TlsLayer | null>> | undefined;
    readonly entryPoints?: Readonly<Record<string, TcpEntryPointLayer>> | undefined;
    readonly routes?: readonly { readonly service?: string | undefined }[] | undefined;
  },
  problem: (path: (string | number)[], message: string) => void,
): void {
  for (const [service, entryPoint] of tcpServicesOf(config.entryPoints, true)) {
    const layer = config.services?.[service];
    if (!layer) continue;
    const check = layer.healthCheck;
    const checkSpeaksTls = typeof check === 'object' && check.protocol !== undefined && TLS_PROTOCOLS.has(check.protocol);
    const key = layer.protocol !== undefined && TLS_PROTOCOLS.has(layer.protocol) ? 'protocol' : layer.tls !== undefined && !checkSpeaksTls ? 'tls' : undefined;
    if (key === undefined) continue;
    const routes = (config.routes ?? []).flatMap((route, index) => (route.service === service ? [`routes.${index}`] : []));
    const shared = routes.length > 0 ? `; ${routes.join(', ')} ${routes.length === 1 ? 'uses' : 'use'} it over HTTP, where it applies, but the tcp entry point would not` : '';
    const effect = key === 'protocol' ? `entry point "${entryPoint}" would send its instances clear bytes where they expect TLS (${layer.protocol})` : `entry point "${entryPoint}" would ignore it`;
    problem(['services', service, key], `a tcp entry point with tls forwards the decrypted bytes; upstream TLS applies to HTTP routes only: ${effect}${shared}`);
  }
}
