import { describe, expect, it } from 'vitest';
import { errorMessage } from './errors.ts';

describe('errorMessage', () => {
  it.each([
    {
      case: 'leaves out the empty resolution note grpc-js appends to a refused etcd connection',
      message: '14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:2379. Resolution note: ',
      expected: '14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:2379.',
    },
    {
      case: 'leaves out an empty resolution note without a trailing space too',
      message: '14 UNAVAILABLE: No addresses resolved. Resolution note:',
      expected: '14 UNAVAILABLE: No addresses resolved.',
    },
    {
      case: 'keeps a resolution note that says something',
      message: '14 UNAVAILABLE: No addresses resolved. Resolution note: DNS lookup of etcd failed',
      expected: '14 UNAVAILABLE: No addresses resolved. Resolution note: DNS lookup of etcd failed',
    },
    { case: 'keeps any other message as it is', message: '14 UNAVAILABLE: Connection dropped', expected: '14 UNAVAILABLE: Connection dropped' },
  ])('$case', ({ message, expected }) => {
    expect(errorMessage(new Error(message))).toBe(expected);
  });

  it('reads a thrown value that is not an Error as text', () => {
    expect(errorMessage('14 UNAVAILABLE: x. Resolution note: ')).toBe('14 UNAVAILABLE: x.');
    expect(errorMessage(42)).toBe('42');
  });
});
