import { z } from 'zod';
import { parseRegistryUrl, type RegistryLocation } from '../../src/registry-url.ts';
import { DEFAULT_SERVER_LIMITS } from './defaults.ts';
import { routeSchema, serviceName } from './schema-route.ts';
import { serviceDefaultsSchema, serviceSettingsSchema } from './schema-service.ts';
import { byteSize, duration, ipRangeText, listenAddress, section } from './schema-values.ts';

/** A registry URL (`zk://`, `etcd://`, `etcds://`, `file:`) checked by `parseRegistryUrl`. */
const registry = z.string().transform((url, context): { url: string; location: RegistryLocation } => {
  try {
    return { url, location: parseRegistryUrl(url) };
  } catch (error) {
    context.addIssue({ code: 'custom', message: (error as Error).message });
    return z.NEVER;
  }
});

/**
 * The gateway configuration file as zod reads it: strict objects everywhere, durations and sizes
 * normalised, nothing filled in yet (`resolveConfig` applies the defaults and merges services).
 */
export const configSchema = section({
  listen: listenAddress.optional(),
  admin: z.union([z.literal(false), listenAddress], { error: 'expected false or an address such as 127.0.0.1:9180' }).optional(),
  registries: z.array(registry).optional(),
  defaults: serviceDefaultsSchema.optional(),
  services: z.record(serviceName, serviceSettingsSchema.nullable()).optional(),
  routes: z.array(routeSchema).optional(),
  forwarding: section({ trustedProxies: z.array(ipRangeText).optional() }).optional(),
  accessLog: z.boolean().optional(),
  limits: section({
    maxHeaderSize: byteSize.optional(),
    headersTimeout: duration.optional(),
    requestTimeout: duration.optional(),
    keepAliveTimeout: duration.optional(),
  }).optional(),
  shutdown: section({ drainTimeout: duration.optional() }).optional(),
}).superRefine((config, context) => {
  const names = new Map<string, number>();
  config.routes?.forEach((route, index) => {
    if (route.name === undefined) return;
    const first = names.get(route.name);
    if (first !== undefined) context.addIssue({ code: 'custom', path: ['routes', index, 'name'], message: `route name "${route.name}" is already used by routes.${first}` });
    else names.set(route.name, index);
  });
  const headersTimeout = config.limits?.headersTimeout ?? DEFAULT_SERVER_LIMITS.headersTimeoutMs;
  const requestTimeout = config.limits?.requestTimeout ?? DEFAULT_SERVER_LIMITS.requestTimeoutMs;
  // Node refuses a server whose headers timeout exceeds its (non-zero) request timeout.
  if (requestTimeout > 0 && headersTimeout > requestTimeout) {
    context.addIssue({ code: 'custom', path: ['limits', 'headersTimeout'], message: 'must not exceed limits.requestTimeout' });
  }
});

/** The file as parsed and normalised, before defaults. */
export type ConfigInput = z.output<typeof configSchema>;
