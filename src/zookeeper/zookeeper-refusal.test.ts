import { describe, expect, it } from 'vitest';
import { ZooKeeperError } from './zookeeper-errors.ts';
import { describeZooKeeperRefusal, digestUser } from './zookeeper-refusal.ts';

const context = { connectString: '127.0.0.1:2181', username: 'gateway' } as const;
const noAuth = (operation: string, path: string) => new ZooKeeperError('NO_AUTH', `${operation} ${path}: NO_AUTH`, { path, operation });

describe('describeZooKeeperRefusal', () => {
  it('names the connect string, the user, the node, the permission and the setAcl for a refused read', () => {
    const cause = noAuth('getChildren', '/zsb');
    const described = describeZooKeeperRefusal(cause, context) as ZooKeeperError;
    expect(described).toBeInstanceOf(ZooKeeperError);
    expect(described.code).toBe('SB_ZK_NO_AUTH');
    expect(described.cause).toBe(cause);
    expect(described.message).toBe(
      `ZooKeeper 127.0.0.1:2181 refused digest user "gateway" the READ permission on /zsb (getChildren /zsb: NO_AUTH): grant it there, keeping the node's other ACL entries (zkCli: getAcl /zsb, then setAcl /zsb <those entries>,digest:gateway:<base64 sha1 of gateway:password>:r)`,
    );
  });

  it.each([
    ['addWatch', '/zsb', 'READ permission on /zsb', 'setAcl /zsb', ':r)'],
    ['create', '/zsb/peers/gw-1', 'CREATE permission on /zsb/peers ', 'setAcl /zsb/peers', ':c)'],
    ['mkdirp', '/zsb/peers', 'CREATE permission on the deepest existing node of /zsb/peers ', 'setAcl <that node>', ':c)'],
    ['setData', '/zsb/peers/gw-1', 'WRITE permission on /zsb/peers/gw-1 ', 'setAcl /zsb/peers/gw-1', ':w)'],
    ['remove', '/zsb/peers/gw-1', 'DELETE permission on /zsb/peers ', 'setAcl /zsb/peers', ':d)'],
    ['create', '/top', 'CREATE permission on / ', 'setAcl /', ':c)'],
  ])('names what %s of %s lacks', (operation, path, permission, hint, letter) => {
    const { message } = describeZooKeeperRefusal(noAuth(operation, path), context) as Error;
    expect(message).toContain(permission);
    expect(message).toContain(hint);
    expect(message.endsWith(letter)).toBe(true);
  });

  it('names a client without auth as world:anyone', () => {
    const { message } = describeZooKeeperRefusal(noAuth('getData', '/zsb/routes/a'), { ...context, username: undefined }) as Error;
    expect(message).toMatch(/^ZooKeeper 127\.0\.0\.1:2181 refused the client, connected without auth \(world:anyone\), the READ permission on \/zsb\/routes\/a .*,world:anyone:r\)$/);
  });

  it('describes a refusal once, and passes any other error through unchanged', () => {
    const described = describeZooKeeperRefusal(noAuth('getChildren', '/zsb'), context);
    expect(describeZooKeeperRefusal(described, context)).toBe(described);
    for (const other of [new ZooKeeperError('CONNECTION_LOSS', 'getChildren /zsb: CONNECTION_LOSS', { path: '/zsb' }), new Error('NO_AUTH'), undefined]) expect(describeZooKeeperRefusal(other, context)).toBe(other);
  });

  it('takes the user of a digest, never its password', () => {
    expect(digestUser('gateway:se:cret')).toBe('gateway');
    expect(digestUser(undefined)).toBeUndefined();
  });
});
