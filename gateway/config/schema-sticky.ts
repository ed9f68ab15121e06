import { z } from 'zod';
import { tcpServicesOf, type TcpEntryPointLayer } from './schema-tcp-service.ts';
import { longDuration, section } from './schema-values.ts';

/** A cookie name (RFC 6265 token). */
const cookieName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'is not a valid cookie name');

/** A cookie Path: starts with `/`, and holds no `;`, space or control character (RFC 6265 path-value). */
const cookiePath = z.string().regex(/^\/[\x21-\x3a\x3c-\x7e]*$/, 'expected a path starting with / without ";", spaces or control characters');

/** The sticky cookie's attributes; each left out keeps the inherited or default value. */
const stickyCookie = section({
  name: cookieName.optional(),
  path: cookiePath.optional(),
  maxAge: longDuration.refine((ms) => ms >= 1_000, 'must be at least 1s (Max-Age counts whole seconds); leave it out for a session cookie').optional(),
  secure: z.boolean().optional(),
  httpOnly: z.boolean().optional(),
  sameSite: z.enum(['lax', 'strict', 'none']).optional(),
});

/** `services.<name>.sticky`: true for the default cookie, false for none, or `{ cookie: { … } }`. */
export const stickySchema = z.union([z.boolean(), section({ cookie: stickyCookie.optional() })], {
  error: 'expected true, false or { cookie: { name, path, maxAge, secure, httpOnly, sameSite } }',
});

type StickyLayer = { readonly sticky?: z.output<typeof stickySchema> | undefined };

/**
 * `sameSite: none` without `secure` after `defaults` apply (browsers drop such a cookie), reported
 * where `sameSite` or `secure` is written; and `sticky` on a service a tcp entry point forwards to.
 */
export function stickyIssues(
  config: {
    readonly defaults?: StickyLayer | undefined;
    readonly services?: Readonly<Record<string, StickyLayer | null>> | undefined;
    readonly entryPoints?: Readonly<Record<string, TcpEntryPointLayer>> | undefined;
  },
  problem: (path: (string | number)[], message: string) => void,
): void {
  const cookieOf = (layer: StickyLayer | undefined) => (typeof layer?.sticky === 'object' ? layer.sticky.cookie : undefined);
  const inherited = cookieOf(config.defaults);
  const check = (layer: StickyLayer, path: (string | number)[]) => {
    if (layer.sticky === false || layer.sticky === undefined) return;
    const own = cookieOf(layer);
    const sameSite = own?.sameSite ?? inherited?.sameSite;
    const secure = own?.secure ?? inherited?.secure ?? false;
    if (sameSite !== 'none' || secure) return;
    const where = own?.sameSite !== undefined ? 'sameSite' : 'secure';
    problem([...path, 'sticky', 'cookie', where], 'sameSite: none needs secure: true (browsers drop a SameSite=None cookie without Secure)');
  };
  if (config.defaults) check(config.defaults, ['defaults']);
  for (const [name, layer] of Object.entries(config.services ?? {})) if (layer) check(layer, ['services', name]);
  for (const service of tcpServicesOf(config.entryPoints).keys()) {
    const sticky = config.services?.[service]?.sticky;
    if (sticky !== undefined && sticky !== false) problem(['services', service, 'sticky'], 'a tcp entry point forwards this service bytes, not HTTP requests: it has no cookie to stick by (set sticky: false)');
  }
}
