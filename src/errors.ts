/** Base of every Switchboard error: a stable machine-readable `code`, the original error on `cause`. */
export class SwitchboardError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A registry entry that could not be decoded; the entry is skipped, its siblings still serve. */
export class InvalidInstanceError extends SwitchboardError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SB_INVALID_INSTANCE', message, options);
  }
}

/** A configuration or list file that was refused; `path` names the file, the message the reason. */
export class ConfigFileError extends SwitchboardError {
  readonly path: string;

  constructor(path: string, reason: string, options?: { cause?: unknown }) {
    super('SB_CONFIG_INVALID', `${path}: ${reason}`, options);
    this.path = path;
  }
}

/** A registry that could not be reached or answered with an error. */
export class RegistryError extends SwitchboardError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SB_REGISTRY', message, options);
  }
}

/**
 * A registry's refusal of who asked (no right on the node or prefix, no user while authentication
 * is on), which an operator must grant: asked again, the registry answers the same, so a retry waits
 * longer than after an outage. Set by the registry clients' refusal descriptions.
 */
export interface RegistryRefusal {
  readonly refusal: true;
}

/** Whether `error` is a registry's refusal of who asked (`RegistryRefusal`). */
export function isRegistryRefusal(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as Partial<RegistryRefusal>).refusal === true;
}

/** A `RegistryError` that is a registry's refusal of who asked. */
export class RegistryRefusalError extends RegistryError implements RegistryRefusal {
  readonly refusal = true as const;
}

/**
 * An entry at a registration's own key that another writer holds for good: a persistent ZooKeeper
 * node or an etcd key on no lease (written by hand or by another tool). No session or lease ends it,
 * and it is not the registration's to delete or overwrite: the registration waits for an operator
 * to delete it (`key`), and writes its own then.
 */
export class RegistryEntryHeldError extends SwitchboardError {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super('SB_REGISTRY_ENTRY_HELD', message);
  }
}

/**
 * An empty "Resolution note:" that grpc-js (under the etcd client) appends to a failed call's details
 * when its resolver left none (`… ECONNREFUSED 127.0.0.1:2379. Resolution note: `).
 */
const RESOLUTION_NOTE = 'Resolution note:';

/** Best-effort human text for any thrown value, for logs: an empty trailing grpc-js "Resolution note:" is left out, a note with text kept. */
export function errorMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  // Trimmed, not matched with /\s*Resolution note:\s*$/: that pattern takes time quadratic in a run of
  // whitespace anywhere in the message (a value or a body quoted in it), and every error logged passes here.
  const trimmed = message.trimEnd();
  return trimmed.endsWith(RESOLUTION_NOTE) ? trimmed.slice(0, -RESOLUTION_NOTE.length).trimEnd() : message;
}

/**
 * The reason in a YAML parse error (from the `yaml` package) on one line: its first line, where the
 * place is named (`… at line 2, column 1`), without the colon that introduced the excerpt after it.
 */
export function yamlErrorReason(error: unknown): string {
  return errorMessage(error).split('\n')[0]!.replace(/:\s*$/, '');
}
