import { z } from 'zod';
import { count, duration, headerName, ipRangeText, longDuration, section } from './schema-values.ts';

/** The JWS algorithms `jwtAuth` can verify; `none` is not among them, so it can never be allowed. */
export const JWT_ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

const oneOrMany = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).transform((value) => (typeof value === 'string' ? [value] : value));

/** `sha256:<64 hex digits>`: the digest of an API key (`printf %s "$KEY" | sha256sum`); the key itself never sits in the file. */
const keyHash = z
  .string()
  .regex(/^sha256:[0-9a-fA-F]{64}$/, 'expected sha256:<64 hex digits>, the SHA-256 of the key (printf %s "$KEY" | sha256sum)')
  .transform((text) => text.slice('sha256:'.length).toLowerCase());

/**
 * A bcrypt hash of a password, as `htpasswd -nbB <name> <password>` writes it (`$2y$`, the same
 * algorithm as `$2b$`, which the bcrypt binding reads; `$2a$` too). MD5 (`$apr1$`), SHA-1 (`{SHA}`)
 * and crypt(3) htpasswd hashes are refused: they are fast to guess from a leaked file.
 */
const passwordHash = z
  .string()
  .regex(/^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$/, 'expected a bcrypt hash ($2y$…, as `htpasswd -nbB <name> <password>` prints after the colon); MD5, SHA-1 and crypt hashes are refused')
  .transform((text) => (text.startsWith('$2y$') ? `$2b$${text.slice(4)}` : text));

/** `consumers`: name → one identity with its credentials, labels and own limits. */
export const consumersSchema = z.record(
  z.string().regex(/^[A-Za-z0-9_.@-]{1,64}$/, 'must be 1-64 letters, digits, "_", ".", "@" or "-"'),
  section({
    keys: z.array(keyHash).optional(),
    passwords: z.array(passwordHash).optional(),
    jwt: z.array(section({ issuer: z.string().min(1), subject: z.string().min(1).optional() })).optional(),
    labels: z.record(z.string(), z.string()).optional(),
    rateLimit: section({
      average: z.number().positive('must be above 0'),
      period: longDuration.refine((ms) => ms > 0, 'must be above 0').optional(),
      burst: count(1).optional(),
    }).optional(),
  }),
);

/** The access-control kinds of named middleware and their settings as written. */
export const ACCESS_MIDDLEWARE_KINDS = {
  keyAuth: section({
    header: headerName.optional(),
    query: z.string().min(1).optional(),
    strip: z.boolean().optional(),
  }),
  basicAuth: section({
    realm: z
      .string()
      .regex(/^[\x20-\x7e]{1,64}$/, 'must be 1-64 printable ASCII characters')
      .refine((realm) => !/["\\]/.test(realm), 'must not hold `"` or `\\`')
      .optional(),
    strip: z.boolean().optional(),
  }),
  jwtAuth: section({
    algorithms: z.array(z.enum(JWT_ALGORITHMS, { error: `expected one of ${JWT_ALGORITHMS.join(', ')} ("none" is never accepted)` })).min(1),
    secretFile: z.string().min(1).optional(),
    publicKeyFiles: z.array(z.string().min(1)).optional(),
    jwks: section({
      url: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }),
      refresh: duration.refine((ms) => ms >= 1_000, 'must be at least 1s').optional(),
      cooldown: duration.optional(),
      timeout: duration.refine((ms) => ms > 0, 'must be above 0').optional(),
    }).optional(),
    issuer: oneOrMany.optional(),
    audience: oneOrMany.optional(),
    clockSkew: longDuration.optional(),
    from: section({ header: headerName.optional(), cookie: z.string().min(1).optional(), query: z.string().min(1).optional() }).optional(),
    claimsToHeaders: z.record(z.string().min(1), headerName).optional(),
    stripAuthorization: z.boolean().optional(),
    consumerRequired: z.boolean().optional(),
    cacheSize: count(0).optional(),
    cacheTtl: longDuration.optional(),
  }).superRefine((settings, context) => {
    const hmac = settings.algorithms.filter((alg) => alg.startsWith('HS'));
    const asymmetric = settings.algorithms.filter((alg) => !alg.startsWith('HS'));
    if (hmac.length > 0 && settings.secretFile === undefined) context.addIssue({ code: 'custom', path: ['secretFile'], message: `${hmac.join(', ')} need a secretFile` });
    if (asymmetric.length > 0 && !settings.publicKeyFiles?.length && !settings.jwks) {
      context.addIssue({ code: 'custom', path: ['algorithms'], message: `${asymmetric.join(', ')} need publicKeyFiles or jwks` });
    }
  }),
  ipAllowList: section({ sourceRange: z.array(ipRangeText).min(1), depth: count(0, 32).optional() }),
  ipDenyList: section({ sourceRange: z.array(ipRangeText).min(1), depth: count(0, 32).optional() }),
  forwardAuth: section({
    address: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }),
    authResponseHeaders: z.array(headerName).optional(),
    timeout: duration.refine((ms) => ms > 0, 'must be above 0').optional(),
  }),
};

export type ConsumersInput = z.output<typeof consumersSchema>;
