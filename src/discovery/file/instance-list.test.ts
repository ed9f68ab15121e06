import { describe, expect, it } from 'vitest';
import { ConfigFileError } from '../../errors.ts';
import { decodeInstance } from '../instance-codec.ts';
import { parseInstanceList } from './instance-list.ts';

describe('parseInstanceList', () => {
  it.each([
    ['an unclosed list', 'services:\n  user: [127.0.0.1:1\n'],
    ['a key given twice', 'services:\n  user: []\n  user: []\n'],
  ])('refuses %s with a one-line reason that names the place and ends there, not with the colon before the excerpt', (_case, text) => {
    let error: unknown;
    try {
      parseInstanceList('/etc/sb/instances.yaml', text);
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(ConfigFileError);
    const { message } = error as ConfigFileError;
    expect(message).toMatch(/^\/etc\/sb\/instances\.yaml: not valid YAML or JSON: .+ at line \d+, column \d+$/);
  });

  it('gives an object entry the id its address has as a string, an IPv6 host bracketed as the configuration\'s instances are', () => {
    const text = 'services:\n  user: ["[::1]:8080", { host: "::1", port: 8081 }, { host: 10.0.0.7, port: 8082 }, { host: "::1", port: 8083, id: own }]\n';
    const ids = parseInstanceList('/etc/sb/instances.yaml', text)
      .get('user')!
      .map((raw) => {
        const decoded = decodeInstance(raw);
        return decoded.ok ? decoded.instance.id : decoded.error.message;
      });
    // "::1:8081" would read as the host ::1:8081 with no port, and differ from the string form's id.
    expect(ids).toEqual(['[::1]:8080', '[::1]:8081', '10.0.0.7:8082', 'own']);
  });
});
