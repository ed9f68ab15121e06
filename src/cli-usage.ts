// The reason of a `node:util` parseArgs error, as the programs' usage errors print it.

/**
 * Node's reason, from a lower-case start. Its first sentence names the flag; for a value that
 * starts with a dash (`-c -x.yaml`) the next ones say how to write it, kept with the value put in
 * for Node's `-XYZ`; elsewhere they advise on positional arguments, and are left out.
 */
export function usageReason(error: Error, args: readonly string[]): string {
  const [first, ...advice] = error.message.split('\n');
  let reason = first!.replace(/\.(?:\s.*)?$/, '');
  if (/argument is ambiguous/.test(first!)) {
    // The first use of the flag followed by a dash is the one Node stopped at (-c a.yaml -c -x.yaml).
    const flag = /'(-[^']+)'/.exec(first!)?.[1];
    const value = args.find((arg, index) => index > 0 && args[index - 1] === flag && arg.startsWith('-'));
    reason += `: ${advice.map((line) => (value === undefined ? line : line.replaceAll('-XYZ', value))).join(' ').replace(/\.$/, '')}`;
  }
  return `${reason.charAt(0).toLowerCase()}${reason.slice(1)}`;
}
