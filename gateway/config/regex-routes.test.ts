import { describe, expect, it } from 'vitest';
import { regexBacktrackingRisk } from './regex-safety.ts';

/**
 * Route patterns as teams write them (versioned APIs, UUIDs, dates, hex ids, slugs, files), which
 * the backtracking check must never refuse: a measure of its false refusals beside the patterns of
 * the repo's docs, examples and tests.
 */
const REALISTIC_ROUTES: readonly string[] = [
  String.raw`^/v\d+/`,
  String.raw`^/api/v\d+/users/\d+$`,
  String.raw`^/v[1-9]\d{0,2}/orders(/.*)?$`,
  String.raw`^/api/v(\d{1,3})(?:\.(\d{1,3}))?/(.*)$`,
  String.raw`^/v\d+(?:\.\d+){0,2}/`,
  String.raw`^/(?:api|internal)/v[12]/.*`,
  String.raw`^/users/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`,
  String.raw`^/orders/(?<id>[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12})(/.*)?$`,
  String.raw`[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}`,
  String.raw`^/reports/\d{4}-\d{2}-\d{2}$`,
  String.raw`^/archive/(\d{4})/(\d{2})/(\d{2})/[^/]+$`,
  String.raw`^/logs/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z$`,
  String.raw`^/events/(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(/.*)?$`,
  String.raw`^/cal/\d{4}/W\d{2}$`,
  String.raw`^/objects/[0-9a-f]{24}$`,
  String.raw`^/objects/(?<id>[0-9a-fA-F]{24})/versions/\d{1,10}$`,
  String.raw`^/commits/[0-9a-f]{7,40}(/.*)?$`,
  String.raw`^/blobs/sha256:[0-9a-f]{64}$`,
  String.raw`^/blog/[a-z0-9]+(?:-[a-z0-9]+)*/?$`,
  String.raw`^/products/[a-z0-9-]{1,64}$`,
  String.raw`^/products/[a-z0-9-]{1,64}/reviews/.*$`,
  String.raw`^/tenants/[a-z][a-z0-9-]{2,62}/(?:users|groups)/\d{1,12}$`,
  String.raw`^/@[a-z0-9_]{3,30}/posts/\d+$`,
  String.raw`^/gh/[a-z\d](?:[a-z\d]|-(?=[a-z\d])){0,38}/[\w.-]{1,100}$`,
  String.raw`^/u/[A-Za-z0-9_-]{22}$`,
  String.raw`^/s/[A-Za-z0-9]{6,10}$`,
  String.raw`^/static/.+\.(?:css|js|png|jpe?g|svg|woff2?)$`,
  String.raw`\.(?:php|asp|aspx|jsp)$`,
  String.raw`^/(?:en|de|fr|es)(?:-[A-Z]{2})?/`,
  String.raw`^/[a-z]{2}(?:-[a-z]{2})?/docs/.*$`,
  String.raw`^/files/[^/]{1,255}$`,
  String.raw`^/files/(?:[^/]+/)*[^/]+$`,
  String.raw`^/files/(?:[^/]{1,255}/){0,16}[^/]{1,255}$`,
  String.raw`^/download/[\w.-]{1,128}\.(?:zip|tar\.gz|tgz)$`,
  String.raw`^/images/\d{1,5}x\d{1,5}/.+\.(?:png|jpg|webp)$`,
  String.raw`^/search/[^/?#]{1,200}$`,
  String.raw`^/health(?:z|check)?$`,
  String.raw`^/repos/[^/]+/[^/]+/pulls/\d+(?:/files)?$`,
  String.raw`^/(?!admin|internal)[a-z-]+/.*$`,
  String.raw`^/track/[A-Z]{2}\d{9}[A-Z]{2}$`,
  String.raw`^/phone/\+?\d{1,3}[- ]?\d{3}[- ]?\d{3}[- ]?\d{4}$`,
  String.raw`^/ip/(?:\d{1,3}\.){3}\d{1,3}$`,
  String.raw`^/ipv6/[0-9a-fA-F:]{2,39}$`,
  String.raw`^/isbn/(?:97[89])?\d{9}[\dX]$`,
  String.raw`^/[a-z]{1,20}[a-z0-9]{0,20}/.*`,
  String.raw`^/[\w-]{1,100}.*`,
];

describe('regexBacktrackingRisk on realistic routes', () => {
  it.each(REALISTIC_ROUTES)('lets %s through', (source) => {
    expect(regexBacktrackingRisk(source)).toBeUndefined();
  });
});
