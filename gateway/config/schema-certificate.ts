import { z } from 'zod';
import { OBJECT_NAME } from '../config-store/store-layout.ts';
import { certificatePair, entryPointName } from './schema-entrypoint.ts';
import { section } from './schema-values.ts';

/**
 * One named certificate (`certificates.<name>`): a PEM certificate and its key, by reference (the
 * files stay on each gateway's disk; a shared store holds only the paths), served by SNI on the
 * TLS entry points it names, or on every TLS entry point when it names none.
 */
const namedCertificate = section({
  ...certificatePair.shape,
  entryPoints: z.array(entryPointName).min(1, 'expected at least one entry point name (or leave entryPoints out for every TLS entry point)').optional(),
});

/** The top-level `certificates` section: named certificates, added to and removed from the TLS entry points on a reload. */
export const namedCertificatesSchema = z.record(z.string().regex(OBJECT_NAME, 'expected letters, digits, ".", "_" or "-" (it names a key in the config store)'), namedCertificate);

/** A named certificate may only name entry points that exist and terminate TLS (https, or tcp with `tls`). */
export function namedCertificateIssues(
  config: {
    certificates?: Record<string, { entryPoints?: readonly string[] | undefined }> | undefined;
    entryPoints?: Record<string, { protocol?: string | undefined; tls?: unknown }> | undefined;
  },
  problem: (path: (string | number)[], message: string) => void,
): void {
  const secure = Object.entries(config.entryPoints ?? {})
    .filter(([, entryPoint]) => entryPoint.tls !== undefined)
    .map(([name]) => name);
  for (const [name, certificate] of Object.entries(config.certificates ?? {})) {
    certificate.entryPoints?.forEach((entryPoint, position) => {
      if (secure.includes(entryPoint)) return;
      const known = secure.length > 0 ? `TLS entry points: ${secure.join(', ')}` : 'no entry point terminates TLS';
      const what = config.entryPoints?.[entryPoint] ? `entry point "${entryPoint}" does not terminate TLS` : `no entry point is named "${entryPoint}"`;
      problem(['certificates', name, 'entryPoints', position], `${what} (${known})`);
    });
  }
}
