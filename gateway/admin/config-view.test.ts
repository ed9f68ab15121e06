import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/index.ts';
import { configView, REDACTED, routesView } from './config-view.ts';

describe('configView', () => {
  it('shows the resolved configuration with the admin token redacted and services as an object', () => {
    const config = parseConfig('g.yaml', 'admin: { listen: "0.0.0.0:9180", token: super-secret-admin-token }\nservices: { user: {} }\n');
    const view = configView(config) as { admin: unknown; services: Record<string, { balancer: unknown }>; listen: unknown };
    expect(view.admin).toEqual({ listen: { host: '0.0.0.0', port: 9180 }, token: REDACTED });
    expect(JSON.stringify(view)).not.toContain('super-secret-admin-token');
    expect(view.services.user?.balancer).toEqual({ algorithm: 'weighted-round-robin' });
    expect(view.listen).toEqual({ host: null, port: 8080 });
  });

  it('shows a disabled admin listener as false and a missing token as null', () => {
    expect((configView(parseConfig('g.yaml', 'admin: false')) as { admin: unknown }).admin).toBe(false);
    expect((configView(parseConfig('g.yaml', '')) as { admin: { token: unknown } }).admin.token).toBeNull();
  });
});

describe('routesView', () => {
  it('lists routes in matching order with their place', () => {
    const config = parseConfig('g.yaml', 'routes:\n  - { name: all, service: a }\n  - { name: users, path: /users, service: u, stripPrefix: true }\n');
    expect(routesView(config).routes).toMatchObject([
      { order: 0, name: 'users', path: '/users', service: 'u', stripPrefix: true, host: null },
      { order: 1, name: 'all', service: 'a' },
    ]);
  });
});
