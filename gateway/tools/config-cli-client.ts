import { SwitchboardError } from '../../src/errors.ts';
import type { StoreKind } from '../config-store/store-layout.ts';
import type { ObjectRefusalMark } from '../config-store/store-listing-refusals.ts';
import type { StoreListing } from '../config-store/store-writer.ts';

/** How long one admin API call of `switchboard config` may take. */
export const CONFIG_CLI_TIMEOUT_MS = 15_000;

/** An admin API call that failed; the message says what to do about it. */
export class AdminCallError extends SwitchboardError {
  constructor(
    message: string,
    readonly status: number | undefined,
  ) {
    super('SB_CONFIG_CLI_ADMIN', message);
  }
}

/** Why a connection to the admin API could not be made (nothing was sent): as undici's fetch gives them in `cause.code`. */
const UNREACHED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT']);

/** `GET /api/store` as the CLI reads it: each object the gateway refused marked `refused`. */
export type StoreView = Omit<StoreListing, 'objects'> & {
  store: string;
  objects: readonly (StoreListing['objects'][number] & { refused?: ObjectRefusalMark })[];
};

/** One object as `GET /api/{kind}/{name}` answers it. */
export interface ObjectView {
  kind: StoreKind;
  name: string;
  revision: string;
  value: unknown;
}

/** A refusal the gateways will log once a write or a deletion is made (the admin API's `warnings`): the object's store key, its kind, and why. */
export interface StoreWarning {
  readonly key: string;
  readonly kind: StoreKind;
  readonly reason: string;
}

/** The admin API calls of `switchboard config`, against one gateway of the group. */
export interface ConfigAdminClient {
  store(): Promise<StoreView>;
  get(kind: StoreKind, name: string): Promise<ObjectView | undefined>;
  /**
   * PUT with `If-None-Match: *` (`create`) or `If-Match: "<revision>"`; resolves with the new revision
   * and the answer's warnings, none with `quiet` (`?warnings=false`: the gateway judges none, a merge
   * of its whole store saved, for a caller that has them from a dry run of all its writes).
   */
  put(kind: StoreKind, name: string, value: unknown, condition: { create: true } | { revision: string } | Record<string, never>, quiet?: boolean): Promise<{ revision: string; created: boolean; warnings: readonly StoreWarning[] }>;
  /**
   * Asks the gateway to judge a write of the object (`?dryRun=true`) beside its own file, writing
   * nothing; resolves with the issues it names (none: it would take the write), whether the store
   * holds that value already (compared there, secrets included; false from a gateway that cannot say)
   * and the warnings the write would give.
   */
  judge(kind: StoreKind, name: string, value: unknown): Promise<{ issues: readonly { path: string; reason: string }[]; unchanged: boolean; warnings: readonly StoreWarning[] }>;
  /**
   * Asks the gateway to judge the writes of `objects` and the deletions of `deleted` together
   * (`PUT /api/store?dryRun=true`), writing nothing: the issues it names, the `kind/name` of each
   * object the store holds as it is, and the warnings of all the changes; undefined from a gateway
   * older than that (405), which `judge` asks one object at a time.
   */
  judgeAll(objects: readonly { kind: StoreKind; name: string; value: unknown }[], deleted: readonly { kind: StoreKind; name: string }[]): Promise<{ issues: readonly { path: string; reason: string }[]; unchanged: readonly string[]; warnings: readonly StoreWarning[] } | undefined>;
  /** DELETE, with `If-Match` when a revision is given; resolves with the answer's warnings (none from a gateway older than them, which answers 204; none with `quiet`, as `put`). */
  delete(kind: StoreKind, name: string, revision?: string, quiet?: boolean): Promise<readonly StoreWarning[]>;
}

/** A client of the admin API at `base` (`http://127.0.0.1:9180`), sending `token` when given. */
export function configAdminClient(base: string, token: string | undefined): ConfigAdminClient {
  const call = async (method: string, path: string, init: { body?: unknown; headers?: Record<string, string>; answered?: readonly number[] } = {}): Promise<{ status: number; body: Record<string, unknown> | undefined }> => {
    const url = new URL(path, base);
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.body === undefined ? {} : { 'content-type': 'application/json' }), ...init.headers },
        ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
        signal: AbortSignal.timeout(CONFIG_CLI_TIMEOUT_MS),
      });
    } catch (error) {
      const code = (error as { cause?: { code?: string } }).cause?.code;
      const cause = code ?? (error as Error).message;
      if (code !== undefined && UNREACHED.has(code)) throw new AdminCallError(`cannot reach the admin API at ${url.origin} (${cause}); is --admin right and the gateway running?`, undefined);
      // Connected, and the request sent: a reset or a timeout before the head says nothing of whether it was carried out.
      const what = (error as Error).name === 'TimeoutError' ? `no answer within ${CONFIG_CLI_TIMEOUT_MS / 1000} s` : `the connection dropped before an answer (${cause})`;
      throw new AdminCallError(`${method} ${url.pathname} to the admin API at ${url.origin}: ${what}${method === 'GET' ? '' : '; the gateway may have carried the request out'}`, undefined);
    }
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      // The head came, the body was cut short: as no answer, the request may have been carried out.
      const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
      throw new AdminCallError(`${method} ${url.pathname}: the answer (${response.status}) was cut short (${cause}); the gateway may have carried the request out`, undefined);
    }
    const body = text ? (safeJson(text) as Record<string, unknown> | undefined) : undefined;
    if (response.ok || response.status === 404 || init.answered?.includes(response.status)) return { status: response.status, body };
    throw new AdminCallError(`${method} ${url.pathname}: ${explain(response.status, body)}`, response.status);
  };
  // Whether the gateway takes `?warnings=false`: one older than it refuses the parameter (400
  // SB_ADMIN_QUERY, nothing written), and the write is sent again without it, as every later one.
  let takesQuiet = true;
  const write = async (method: 'PUT' | 'DELETE', path: string, quiet: boolean, init: { body?: unknown; headers?: Record<string, string> }) => {
    if (!quiet || !takesQuiet) return await call(method, path, init);
    const answer = await call(method, `${path}?warnings=false`, { ...init, answered: [400] });
    if (answer.status !== 400) return answer;
    if (answer.body?.code !== 'SB_ADMIN_QUERY') throw new AdminCallError(`${method} ${path}: ${explain(400, answer.body)}`, 400);
    takesQuiet = false;
    return await call(method, path, init);
  };
  return {
    async store() {
      return (await call('GET', '/api/store')).body as unknown as StoreView;
    },
    async get(kind, name) {
      const answer = await call('GET', `/api/${kind}/${encodeURIComponent(name)}`);
      return answer.status === 404 ? undefined : (answer.body as unknown as ObjectView);
    },
    async put(kind, name, value, condition, quiet = false) {
      const headers: Record<string, string> = 'create' in condition ? { 'if-none-match': '*' } : 'revision' in condition ? { 'if-match': `"${condition.revision}"` } : {};
      const answer = await write('PUT', `/api/${kind}/${encodeURIComponent(name)}`, quiet, { body: value, headers });
      if (answer.status === 404) throw new AdminCallError(`PUT /api/${kind}/${name}: this gateway has no write API (404); is it older than the config store?`, 404);
      const body = answer.body as unknown as { revision: string; created: boolean };
      return { revision: body.revision, created: body.created, warnings: warningsOf(answer.body) };
    },
    async judge(kind, name, value) {
      // Both preconditions, which never hold together: a gateway older than dryRun, which would
      // write, refuses with 412 instead, after judging the object as it does any write (400).
      const headers = { 'if-match': '*', 'if-none-match': '*' };
      const answer = await call('PUT', `/api/${kind}/${encodeURIComponent(name)}?dryRun=true`, { body: value, headers, answered: [400, 412] });
      if (answer.status === 404) throw new AdminCallError(`PUT /api/${kind}/${name}: this gateway has no write API (404); is it older than the config store?`, 404);
      const issues = answer.status === 400 && Array.isArray(answer.body?.issues) ? (answer.body.issues as { path: string; reason: string }[]) : [];
      return { issues, unchanged: answer.status === 200 && answer.body?.unchanged === true, warnings: answer.status === 200 ? warningsOf(answer.body) : [] };
    },
    async judgeAll(objects, deleted) {
      const body = { objects: objects.map(({ kind, name, value }) => ({ kind, name, value })), deleted: deleted.map(({ kind, name }) => ({ kind, name })) };
      const answer = await call('PUT', '/api/store?dryRun=true', { body, answered: [400, 405, 413] });
      // A gateway older than the whole-file dry run (405, 404), or a file past its size: judged object by object.
      if (answer.status === 405 || answer.status === 404 || answer.status === 413) return undefined;
      if (answer.status === 400) {
        if (!Array.isArray(answer.body?.issues)) throw new AdminCallError(`PUT /api/store?dryRun=true: ${explain(400, answer.body)}`, 400);
        return { issues: answer.body.issues as { path: string; reason: string }[], unchanged: [], warnings: [] };
      }
      const judged = (answer.body?.objects ?? []) as { kind: string; name: string; unchanged: boolean }[];
      return { issues: [], unchanged: judged.filter((object) => object.unchanged).map((object) => `${object.kind}/${object.name}`), warnings: warningsOf(answer.body) };
    },
    async delete(kind, name, revision, quiet = false) {
      const answer = await write('DELETE', `/api/${kind}/${encodeURIComponent(name)}`, quiet, { headers: revision ? { 'if-match': `"${revision}"` } : {} });
      if (answer.status === 404) throw new AdminCallError(`${kind}/${name} is not in the store`, 404);
      return warningsOf(answer.body);
    },
  };
}

/** An answer's `warnings`; none when it has none (a gateway older than them). */
function warningsOf(body: Record<string, unknown> | undefined): readonly StoreWarning[] {
  return Array.isArray(body?.warnings) ? (body.warnings as StoreWarning[]) : [];
}

/** What an error answer means for the person running the command. */
function explain(status: number, body: Record<string, unknown> | undefined): string {
  const message = typeof body?.message === 'string' ? body.message : `answered ${status}`;
  if (status === 401) return 'the admin API wants the admin token (401): pass --token or set SWITCHBOARD_ADMIN_TOKEN';
  if (status === 403) return `refused (403): ${message}`;
  if (status === 412) return `changed by someone else (412): ${message}; run the command again to see the current state`;
  if (status === 400 && Array.isArray(body?.issues)) return `invalid (400): ${(body.issues as { path: string; reason: string }[]).map((issue) => `${issue.path}: ${issue.reason}`).join('; ')}`;
  return `${message} (${status}${typeof body?.code === 'string' ? ` ${body.code}` : ''})`;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
