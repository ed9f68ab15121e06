import { isIPv6 } from 'node:net';

/** Why a host with a space or slash is refused. */
export const HOST_SPACES_REASON = 'must be a host name or IP address without spaces or slashes';
/** Why a host that fits in no upstream URL is refused. */
export const HOST_FORM_REASON = 'must be a host name, an IPv4 address or an IPv6 address, without brackets or port';
/** The longest host name DNS allows. */
export const MAX_HOST_LENGTH = 253;

/**
 * True when `value` fits in an upstream URL as its host (`http://<host>:<port>`, IPv6 bracketed):
 * a name or an IPv4 address without URL delimiters, or an IPv6 address without brackets or zone.
 */
export function fitsUpstreamUrl(value: string): boolean {
  return (isIPv6(value) && !value.includes('%')) || (!/[:[\]@?#%\\]/.test(value) && URL.canParse(`http://${value}:1`));
}

/**
 * Why `value` cannot be an instance's host, or undefined when it can: the rule of the registry
 * entries gateways accept (`INSTANCE_HOST`), without zod, for the agent's light flag parser.
 */
export function instanceHostProblem(value: string): string | undefined {
  if (value.length === 0 || value.length > MAX_HOST_LENGTH) return `must be 1 to ${MAX_HOST_LENGTH} characters`;
  if (!/^[^\s/]+$/.test(value)) return HOST_SPACES_REASON;
  if (!fitsUpstreamUrl(value)) return HOST_FORM_REASON;
  return undefined;
}
