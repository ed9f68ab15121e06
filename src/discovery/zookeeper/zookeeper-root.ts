/** `/services/` → `/services`; a root is always absolute. (Light: provider names need it before the ZooKeeper client loads.) */
export function normalizeRoot(root: string): string {
  const trimmed = `/${root}`.replace(/\/+/g, '/').replace(/\/$/, '');
  return trimmed === '' ? '/' : trimmed;
}
