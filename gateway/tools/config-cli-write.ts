// `switchboard config apply`'s write step: its writes and deletions, what it says of a failed one,
// and the warnings the gateway answers about them.
import type { StoreKind } from '../config-store/store-layout.ts';
import { STORE_KINDS } from '../config-store/store-layout.ts';
import type { ObjectChange } from '../config-store/store-writer-diff.ts';
import type { ConfigObject } from '../config-store/store-writer-split.ts';
import { SwitchboardError } from '../../src/errors.ts';
import { AdminCallError, type ConfigAdminClient, type StoreView, type StoreWarning } from './config-cli-client.ts';
import { CONFIG_CLI_CONCURRENCY, inOrderWithLimit } from './config-cli-pool.ts';

/**
 * `apply`'s write step: makes the `plan`'s writes and deletions, reporting each on `out`, then says
 * the file's warnings (`fileWarnings`, judged together), or each write's own when they were not
 * judged together (`quiet` false); after a failed write, the warnings of the writes made, which write
 * failed and why. Resolves with the exit status: 0, or 2 after a failed write.
 */
export async function applyWrites(client: ConfigAdminClient, plan: WritePlan, fileWarnings: readonly StoreWarning[], { out, err }: { readonly out: NodeJS.WritableStream; readonly err: NodeJS.WritableStream }, warned: Set<string>): Promise<number> {
  const { file, quiet, changes } = plan;
  // Judged together, the file's warnings are said once it is written, and the writes ask for none
  // (each would cost the gateway a merge of its whole store); each write's own would be judged beside
  // the store as the gateway last read it, which may not hold this file's earlier writes yet.
  const warnEach = (warnings: readonly StoreWarning[]) => {
    if (!quiet) warnAbout(warnings, file, err, warned);
  };
  const made: WriteMade[] = [];
  const failed: FailedWrite[] = [];
  try {
    await writeChanges(client, plan, out, made, failed, warnEach);
  } catch (error) {
    if (!(error instanceof SwitchboardError)) throw error;
    // Every write made before the failure stays made: its warnings are as true as the file's would have been.
    if (quiet) await warnAboutMade(client, made, fileWarnings, file, err, warned);
    for (const failure of failed) err.write(`${file}: ${failure.id} ${failureSaid(failure)}: ${failure.error.message}\n`);
    const rest = `${made.length} change${made.length === 1 ? '' : 's'} made before it (listed above), the rest of the file not written; run apply again once the cause is dealt with`;
    err.write(`${file}: stopped at ${failed.length === 1 ? 'a failed write' : `${failed.length} failed writes`}: ${rest}\n`);
    return 2;
  }
  if (quiet && changes.size > 0) warnAbout(fileWarnings, file, err, warned);
  return 0;
}

/** A write or a deletion `apply` made: the object as written, or its deletion. */
type WriteMade = ({ readonly value: unknown } | { readonly deleted: true }) & { readonly kind: StoreKind; readonly name: string };

/** A write or deletion that failed: the object's `kind/name`, which of the two, and why. */
interface FailedWrite {
  readonly id: string;
  readonly action: 'written' | 'deleted';
  readonly error: SwitchboardError;
}

/**
 * What became of a failed write: refused when the gateway answered, unknown when no answer came (the
 * connection dropped or timed out once the request was sent): the gateway may have made it.
 */
function failureSaid({ id, action, error }: FailedWrite): string {
  if (error instanceof AdminCallError && error.status === undefined) return `may have been ${action} (no answer came; switchboard config get ${id.replace('/', ' ')} shows whether)`;
  return `was not ${action}`;
}

/** What `writeChanges` writes: the file's objects, the store as listed, the changes between them, and how. */
interface WritePlan {
  readonly desired: readonly ConfigObject[];
  readonly stored: ReadonlyMap<string, StoreView['objects'][number]>;
  readonly changes: ReadonlyMap<string, ObjectChange>;
  readonly prune: boolean;
  readonly file: string;
  /** Writes ask for no warnings (`?warnings=false`). */
  readonly quiet: boolean;
}

/**
 * Makes `apply`'s writes and deletions, reporting each on `out` (and its warnings to `warnEach`),
 * each made into `made`; the first failure stops it, thrown once the calls in flight are done, with
 * every failed call in `failed`.
 */
async function writeChanges(client: ConfigAdminClient, { desired, stored, changes, prune, file, quiet }: WritePlan, out: NodeJS.WritableStream, made: WriteMade[], failed: FailedWrite[], warnEach: (warnings: readonly StoreWarning[]) => void): Promise<void> {
  const failing = async <T>(id: string, action: FailedWrite['action'], call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (error) {
      if (error instanceof SwitchboardError) failed.push({ id, action, error });
      throw error;
    }
  };
  // Services, middleware, consumers and certificates before the routes that name them: one kind
  // after the other, in the split's order; the objects of one kind several at a time, those it
  // replaces (If-Match) before those it creates, which in ZooKeeper move the kind's generation that
  // an If-Match write checks (concurrent creations would make it read again and again).
  for (const kind of STORE_KINDS) {
    const ofKind = desired.filter((object) => object.kind === kind);
    for (const creating of [false, true]) {
      const pass = ofKind.filter((object) => stored.has(`${object.kind}/${object.name}`) !== creating);
      await inOrderWithLimit(
        pass,
        CONFIG_CLI_CONCURRENCY,
        async (object) => {
          const id = `${object.kind}/${object.name}`;
          if (!changes.has(id)) return 'unchanged';
          // The revision seen when listing: someone else's edit since then is refused (412), not overwritten.
          const current = stored.get(id);
          const result = await failing(id, 'written', () => client.put(object.kind, object.name, object.value, current ? { revision: current.revision } : { create: true }, quiet));
          return { line: `${current ? 'updated' : 'created'} (revision ${result.revision})`, warnings: result.warnings };
        },
        (object, outcome) => {
          out.write(`${object.kind}/${object.name} ${typeof outcome === 'string' ? outcome : outcome.line}\n`);
          if (typeof outcome === 'string') return;
          made.push({ kind: object.kind, name: object.name, value: object.value });
          warnEach(outcome.warnings);
        },
      );
    }
  }
  const absent = [...changes.values()].filter((change) => change.change === '-');
  // Routes go first, so a route never points at a service or middleware already deleted.
  absent.sort((a, b) => STORE_KINDS.indexOf(b.kind) - STORE_KINDS.indexOf(a.kind));
  for (const change of absent) {
    const id = `${change.kind}/${change.name}`;
    if (!prune) {
      out.write(`${id} not in ${file} (kept; --prune deletes it)\n`);
      continue;
    }
    // One at a time: each deletion moves its kind's generation in ZooKeeper, which the next If-Match checks.
    const warnings = await failing(id, 'deleted', () => client.delete(change.kind, change.name, stored.get(id)?.revision, quiet));
    out.write(`${id} deleted\n`);
    made.push({ kind: change.kind, name: change.name, deleted: true });
    warnEach(warnings);
  }
}

/**
 * After a failed write, the warnings of the changes `apply` made before it, which the file's (judged
 * for all its changes) no longer describe: judged together by one more dry run. That dry run says
 * only what the gateway does not refuse yet: an object the changes made left refused (a route naming
 * a middleware deleted) once the gateway has read them is refused already, so each of the file's
 * warnings whose object the store listing marks refused now is said too. A gateway that cannot
 * answer (the failure was its own) leaves a line saying so.
 */
async function warnAboutMade(client: ConfigAdminClient, made: readonly WriteMade[], fileWarnings: readonly StoreWarning[], file: string, err: NodeJS.WritableStream, warned: Set<string>): Promise<void> {
  if (made.length === 0) return;
  const objects = made.flatMap((change) => ('value' in change ? [{ kind: change.kind, name: change.name, value: change.value }] : []));
  const deleted = made.filter((change) => 'deleted' in change);
  try {
    const judged = await client.judgeAll(objects, deleted);
    const said = new Set((judged?.warnings ?? []).map((warning) => warning.key));
    if (judged) warnAbout(judged.warnings, file, err, warned);
    const listing = await client.store();
    const refusedNow = new Set(listing.objects.filter((object) => object.refused !== undefined).map((object) => `${object.kind}/${object.name}`));
    warnAbout(
      fileWarnings.filter((warning) => !said.has(warning.key) && refusedNow.has(`${warning.kind}/${warnedName(warning)}`)),
      file,
      err,
      warned,
    );
  } catch (error) {
    if (!(error instanceof SwitchboardError)) throw error;
    err.write(`${file}: the warnings of the changes made could not be asked for: ${error.message}\n`);
  }
}

/**
 * Writes each warning a gateway answered (an object it will refuse once the write is made) as one
 * line on `err`: the object's path as the file shows it (`routes[orders]`, `middlewares.auth`) and
 * why, after `file` when there is one; each once per command (`warned`, by key and reason).
 */
export function warnAbout(warnings: readonly StoreWarning[], file: string | undefined, err: NodeJS.WritableStream, warned = new Set<string>()): void {
  for (const warning of warnings) {
    const id = `${warning.key}\n${warning.reason}`;
    if (warned.has(id)) continue;
    warned.add(id);
    const name = warnedName(warning);
    const path = warning.kind === 'routes' ? `routes[${name}]` : `${warning.kind}.${name}`;
    err.write(`${file === undefined ? '' : `${file}: `}${path}: ${warning.reason} (warning from the gateway at --admin)\n`);
  }
}

/** The name of the object a warning is about: the last segment of its store key (`<root>/<kind>/<name>`). */
function warnedName(warning: StoreWarning): string {
  return warning.key.slice(warning.key.lastIndexOf('/') + 1);
}
