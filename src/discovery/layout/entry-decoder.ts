import type { InvalidInstanceError } from '../../errors.ts';
import type { RawInstance } from '../instance-codec.ts';
import type { Instance } from '../instance.ts';

/** Outcome of decoding one registry entry: the instances it carries (possibly none), or why it is invalid. */
export type EntryDecodeResult = { ok: true; instances: readonly Instance[] } | { ok: false; error: InvalidInstanceError };

/** Decodes one entry (znode or key) of a layout; never throws, so one bad entry never stops its siblings. */
export type EntryDecoder = (raw: RawInstance) => EntryDecodeResult;
