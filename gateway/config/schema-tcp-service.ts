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

type CheckLayer = boolean | { readonly type?: string | undefined; readonly protocol?: string | undefined } | undefined;

type TlsLayer = {
  readonly protocol?: string | undefined;
  readonly tls?: object | undefined;
  readonly healthCheck?: CheckLayer;
  readonly instances?: readonly (string | { readonly protocol?: string | undefined })[] | undefined;
};

/**
 * Whether the active check of a service behind a tcp entry point speaks TLS, and so reads its `tls`:
 * only a check the service turns into an HTTP one does (its `protocol`, or `type: http`; any other
 * check is a TCP connect there), speaking its own `protocol`, else the one `defaults.healthCheck`
 * names, else the instances' own: the service's `protocol` (refused itself when it speaks TLS), else
 * that of `defaults`. What the two `defaults` give is taken here: it is what the check speaks.
 */
function checkSpeaksTls(layer: TlsLayer, defaults: { readonly protocol?: string | undefined; readonly healthCheck?: CheckLayer } | undefined): boolean {
  const check = layer.healthCheck;
  if (typeof check !== 'object' || (check.protocol === undefined && check.type !== 'http')) return false;
  const inherited = defaults?.healthCheck;
  const protocol = check.protocol ?? (typeof inherited === 'object' ? inherited.protocol : undefined) ?? layer.protocol ?? defaults?.protocol;
  return protocol !== undefined && TLS_PROTOCOLS.has(protocol);
}

/**
 * Upstream TLS on a service that a tcp entry point terminating TLS (with `tls`) forwards to: the
 * gateway decrypts and forwards clear bytes, never TLS, so a `protocol` whose instances speak TLS
 * (`https`, `h2`, `grpcs`), the service's or a static instance's own, would send them clear bytes,
 * and `tls` would be ignored, unless the service's health check speaks TLS (`checkSpeaksTls`: a
 * management port's https check reads it). The service's own `protocol` is judged alone: `defaults`
 * serve the HTTP services too. A plain or passthrough entry point
 * is left alone: it forwards the client's own bytes, often TLS end to end, which `protocol: https`
 * rightly describes. A service that HTTP routes also use is refused as well (the routes would speak
 * TLS, the entry point would not), and the message says so.
 */
export function tcpServiceTlsIssues(
  config: {
    readonly defaults?: { readonly protocol?: string | undefined; readonly healthCheck?: CheckLayer } | undefined;
    readonly services?: Readonly<Record<string, TlsLayer | null>> | undefined;
    readonly entryPoints?: Readonly<Record<string, TcpEntryPointLayer>> | undefined;
    readonly routes?: readonly { readonly service?: string | undefined }[] | undefined;
  },
  problem: (path: (string | number)[], message: string) => void,
): void {
  for (const [service, entryPoint] of tcpServicesOf(config.entryPoints, true)) {
    const layer = config.services?.[service];
    if (!layer) continue;
    const routes = (config.routes ?? []).flatMap((route, index) => (route.service === service ? [`routes.${index}`] : []));
    const shared = routes.length > 0 ? `; ${routes.join(', ')} ${routes.length === 1 ? 'uses' : 'use'} it over HTTP, where it applies, but the tcp entry point would not` : '';
    const refuse = (path: (string | number)[], effect: string) => problem(['services', service, ...path], `a tcp entry point with tls forwards the decrypted bytes; upstream TLS applies to HTTP routes only: entry point "${entryPoint}" ${effect}${shared}`);
    if (layer.protocol !== undefined && TLS_PROTOCOLS.has(layer.protocol)) refuse(['protocol'], `would send its instances clear bytes where they expect TLS (${layer.protocol})`);
    else if (layer.tls !== undefined && !checkSpeaksTls(layer, config.defaults)) refuse(['tls'], 'would ignore it');
    (layer.instances ?? []).forEach((instance, index) => {
      if (typeof instance === 'object' && instance.protocol !== undefined && TLS_PROTOCOLS.has(instance.protocol)) {
        refuse(['instances', index, 'protocol'], `would send this instance clear bytes where it expects TLS (${instance.protocol})`);
      }
    });
  }
}
