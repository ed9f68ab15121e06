import { z } from 'zod';
import { byteSize, count, duration, percent, section } from './schema-values.ts';

/** A service name as registries spell it (as `serviceName` of routes, here to keep this file free of the route schema). */
const mirrorService = z.string().min(1).max(255).regex(/^[^\s/]+$/, 'must not contain "/" or whitespace');

/**
 * `mirror:` of a route: a copy of `percent` of its requests goes to `service` too, its answer
 * dropped (Envoy's `request_mirror_policies`, Traefik's `mirroring`). The service must be declared
 * under `services` or be some route's target (checked with the whole file: `mirrorServiceIssues`).
 */
export const mirrorSchema = section({
  service: mirrorService,
  percent: percent.optional(),
  body: z.boolean().optional(),
  maxBodySize: byteSize.optional(),
  timeout: duration.refine((ms) => ms > 0, 'must be above 0').optional(),
  maxInFlight: count(1, 100_000).optional(),
});

/** `mirror:` as parsed. */
export type MirrorInput = z.output<typeof mirrorSchema>;

/**
 * Refuses a route's `mirror.service` that nothing else in the file names: a service the gateway
 * neither declares nor routes to is one nobody watches a registry for, so every mirror would be dropped.
 */
export function mirrorServiceIssues(
  config: { services?: Record<string, unknown> | undefined; routes?: readonly { service?: string | undefined; mirror?: MirrorInput | undefined }[] | undefined },
  problem: (path: (string | number)[], message: string) => void,
): void {
  const known = new Set([...Object.keys(config.services ?? {}), ...(config.routes ?? []).flatMap((route) => (route.service === undefined ? [] : [route.service]))]);
  config.routes?.forEach((route, index) => {
    if (route.mirror === undefined || known.has(route.mirror.service)) return;
    problem(['routes', index, 'mirror', 'service'], `unknown service "${route.mirror.service}": declare it under services (services: { ${route.mirror.service}: {} } to find it in the registries) or route to it`);
  });
}
