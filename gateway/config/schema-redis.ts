import { z } from 'zod';
import type { RedisNode } from './types-redis.ts';
import { count, duration, section } from './schema-values.ts';

/** `host:port` of a Redis node or sentinel. */
const redisNode = z.string().transform((text, context): RedisNode => {
  const match = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(text);
  const port = Number(match?.[2]);
  if (match && port >= 1 && port <= 65_535) return { host: match[1]!.replace(/^\[|\]$/g, ''), port };
  context.addIssue({ code: 'custom', message: 'expected host:port' });
  return z.NEVER;
});

/** TLS towards Redis: a private CA bundle, a client certificate and key (`tls-auth-clients`), the name to verify. */
const redisTlsSection = section({
  caFile: z.string().min(1).optional(),
  certFile: z.string().min(1).optional(),
  keyFile: z.string().min(1).optional(),
  serverName: z.string().min(1).optional(),
});
/** Redis AUTH from a file: an ACL user (Redis 6+; none: the default user, as `requirepass`) and its password. */
const redisAuthSection = section({ username: z.string().min(1).optional(), passwordFile: z.string().min(1) });

/**
 * Whether a Redis URL carries a password or user: in its userinfo (`redis://:secret@host`) or as a
 * query parameter (`?password=`, `?username=`), which ioredis reads as options that win over ours.
 */
const namesLogin = (url: string) => /^rediss?:\/\/[^/?#]*@/.test(url) || /[?&](?:password|username)=/i.test(url);

/**
 * `redis:`: exactly one of `url` (redis://[:password@]host:port/db or rediss://), `sentinels` with
 * the master `name`, or `cluster` (seed nodes); plus `password` or `auth` (a password file, an ACL
 * user), `tls`, `sentinelAuth` (the Sentinels' own password), `timeout`, `keyPrefix`, `gateways`.
 */
export const redisSchema = section({
  url: z
    .string()
    .regex(/^rediss?:\/\/[^\s]+$/, 'expected redis://host:port[/db] or rediss://host:port[/db]')
    .optional(),
  sentinels: z.array(redisNode).min(1, 'must list at least one sentinel').optional(),
  name: z.string().min(1).optional(),
  cluster: z.array(redisNode).min(1, 'must list at least one node').optional(),
  password: z.string().optional(),
  auth: redisAuthSection.optional(),
  sentinelAuth: redisAuthSection.optional(),
  tls: redisTlsSection.optional(),
  timeout: duration.refine((ms) => ms > 0, 'must be above 0').optional(),
  keyPrefix: z.string().optional(),
  gateways: count(1, 10_000).optional(),
}).superRefine((redis, context) => {
  const targets = (['url', 'sentinels', 'cluster'] as const).filter((key) => redis[key] !== undefined);
  if (targets.length !== 1) context.addIssue({ code: 'custom', message: `set exactly one of url, sentinels (with name) or cluster; found ${targets.length === 0 ? 'none' : targets.join(' and ')}` });
  if (redis.sentinels && !redis.name) context.addIssue({ code: 'custom', path: ['name'], message: 'the master name is required with sentinels' });
  if (redis.name && !redis.sentinels) context.addIssue({ code: 'custom', path: ['name'], message: 'name goes with sentinels' });
  if (redis.auth && (redis.password !== undefined || (redis.url !== undefined && namesLogin(redis.url)))) {
    context.addIssue({ code: 'custom', path: ['auth'], message: 'set the password once: auth.passwordFile, or password (or the url\'s userinfo or password= and username= parameters), not both' });
  }
  if (redis.sentinelAuth && !redis.sentinels) context.addIssue({ code: 'custom', path: ['sentinelAuth'], message: 'sentinelAuth goes with sentinels' });
  if (redis.tls && redis.url?.startsWith('redis://')) context.addIssue({ code: 'custom', path: ['tls'], message: `tls needs a rediss:// url (TLS); ${redis.url.replace(/\/\/[^/?#]*@/, '//***@')} is plain redis://` });
});

/** The `redis:` section as parsed. */
export type RedisInput = z.output<typeof redisSchema>;
