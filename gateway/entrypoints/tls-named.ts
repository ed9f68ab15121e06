import { ConfigFileError, errorMessage } from '../../src/errors.ts';
import type { Logger } from '../../src/logger.ts';
import type { CertificateFiles, NamedCertificate } from '../config/types.ts';
import { tlsReloadsTotal } from '../telemetry/index.ts';
import { loadCertificate, loadCertificateAt, warnOfValidity, type LoadedCertificate } from './tls-certificates.ts';
import { CertificateFolderWatch, type CertificateFolderWatchTiming } from './tls-folder-watch.ts';
import { reloadSlot, type Slot, type TlsCertificates } from './tls-store.ts';

/** One named certificate as configured, and what serves for it now. */
interface NamedSlot extends Slot {
  readonly config: NamedCertificate;
}

/**
 * The named certificates of the configuration (`certificates:`, from the file or the config store),
 * loaded once per process and served by SNI on the TLS entry points each names (every one when it
 * names none), after each entry point's own certificates. A reload adds, replaces and removes them
 * for new handshakes; their folders are watched like the entry points' own. A pair that cannot be
 * loaded is refused alone (logged with its name, path and reason; counted in
 * `switchboard_tls_reloads_total{entry_point="certificates.<name>", result="refused"}`) and the
 * version it replaces, if any, keeps serving. The TLS version floor is each entry point's own
 * (`tls.minVersion` on its servers), so one loaded context serves every entry point.
 */
export class NamedCertificates {
  private slots = new Map<string, NamedSlot>();
  private readonly entryPoints = new Map<string, TlsCertificates>();
  private readonly folders: CertificateFolderWatch;
  private work = Promise.resolve();

  /** `timing` tunes the folder watch and the wait for a pair being renewed (tests). */
  constructor(
    private readonly log: Logger,
    private readonly timing: CertificateFolderWatchTiming = {},
  ) {
    this.folders = new CertificateFolderWatch(() => this.queue(() => this.reloadFiles()), log, { certificates: 'named' }, timing);
  }

  /**
   * Loads the named certificates of the first configuration; rejects with a `ConfigFileError`
   * naming the file, the reason and `certificates.<name>` when one cannot be loaded (at start there
   * is no previous version to keep serving).
   */
  async start(certificates: readonly NamedCertificate[]): Promise<void> {
    const loaded = await Promise.all(
      certificates.map(async (config): Promise<NamedSlot> => {
        const keyPath = `certificates.${config.name}`;
        return { config, files: config, keyPath, current: await loadCertificateAt(config, undefined, keyPath, { ...this.timing, log: this.log }), lastRefusal: undefined };
      }),
    );
    this.slots = new Map(loaded.map((slot) => [slot.config.name, slot]));
    for (const slot of loaded) {
      this.log.info({ certificate: slot.config.name, certFile: slot.files.certFile, names: slot.current.names, keyType: slot.current.keyType }, 'named certificate loaded');
      warnOfValidity(this.log, { certificate: slot.config.name }, slot.current);
    }
    this.folders.watch(this.pairs());
  }

  /** Serves the named certificates meant for `entryPoint` on `certificates` (its TLS store), now and after every change. */
  attach(entryPoint: string, certificates: TlsCertificates): void {
    this.entryPoints.set(entryPoint, certificates);
    certificates.setShared(this.servedOn(entryPoint));
  }

  /** Applies a reloaded configuration's named certificates; resolves once every entry point serves them. */
  apply(certificates: readonly NamedCertificate[]): Promise<void> {
    return this.queue(() => this.update(certificates));
  }

  /** Stops watching the files. */
  close(): void {
    this.folders.close();
  }

  private queue(task: () => Promise<void>): Promise<void> {
    this.work = this.work.then(task, task);
    return this.work;
  }

  private async update(certificates: readonly NamedCertificate[]): Promise<void> {
    // The changed pairs load side by side, so that several in a renewal wait the maximum wait once, not once each.
    const loads = await Promise.all(
      certificates.map(async (config) => {
        const previous = this.slots.get(config.name);
        if (previous && sameFiles(previous.config, config)) return { config, previous, load: undefined };
        // A renewal in progress is waited for (at most the maximum wait), not refused: see `loadCertificate`.
        const load = await loadCertificate(config, undefined, { ...this.timing, log: this.log }).then(
          (current) => ({ current }),
          (error: unknown) => ({ error }),
        );
        return { config, previous, load };
      }),
    );
    const next = new Map<string, NamedSlot>();
    for (const { config, previous, load } of loads) {
      const keyPath = `certificates.${config.name}`;
      if (!load) {
        next.set(config.name, { ...previous!, config });
      } else if ('current' in load) {
        const { current } = load;
        next.set(config.name, { config, files: config, keyPath, current, lastRefusal: undefined });
        tlsReloadsTotal.inc({ entry_point: keyPath, result: 'applied' });
        this.log.info({ certificate: config.name, certFile: config.certFile, names: current.names, keyType: current.keyType }, previous ? 'named certificate replaced' : 'named certificate added');
        warnOfValidity(this.log, { certificate: config.name }, current);
      } else {
        tlsReloadsTotal.inc({ entry_point: keyPath, result: 'refused' });
        const path = load.error instanceof ConfigFileError ? load.error.path : config.certFile;
        this.log.warn({ certificate: config.name, path, reason: errorMessage(load.error) }, previous ? 'named certificate refused; the previous one keeps serving' : 'named certificate refused; the rest apply');
        if (previous) next.set(config.name, previous);
      }
    }
    for (const name of this.slots.keys()) if (!next.has(name)) this.log.info({ certificate: name }, 'named certificate removed');
    this.slots = next;
    this.folders.watch(this.pairs());
    this.publish();
  }

  private async reloadFiles(): Promise<void> {
    let changed = false;
    for (const slot of this.slots.values()) if (await reloadSlot(slot, undefined, this.log, slot.keyPath, this.folders)) changed = true;
    if (changed) this.publish();
  }

  private publish(): void {
    for (const [entryPoint, certificates] of this.entryPoints) certificates.setShared(this.servedOn(entryPoint));
  }

  private servedOn(entryPoint: string): LoadedCertificate[] {
    return [...this.slots.values()].filter((slot) => slot.config.entryPoints?.includes(entryPoint) ?? true).map((slot) => slot.current);
  }

  private pairs(): CertificateFiles[] {
    return [...this.slots.values()].map((slot) => slot.files);
  }
}

function sameFiles(a: NamedCertificate, b: NamedCertificate): boolean {
  return a.certFile === b.certFile && a.keyFile === b.keyFile;
}
