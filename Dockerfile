# One image for both programs. The command picks one:
#   docker run … switchboard:local switchboard --config /etc/switchboard/gateway.yaml   (the default)
#   docker run … switchboard:local switchboard-agent --registry … -- <backend command>
# `docker stop` kills after 10 s, before the gateway's default 25 s drain ends: give the gateway
# --stop-timeout 40 (docs/configuration.md, "shutdown"); the Dockerfile cannot set it.
# Two stages: `build` installs every dependency and bundles the programs into dist/ (npm run build);
# the runtime stage holds the production dependencies and dist/ only (no TypeScript, no tsx).
# Node 24, the current LTS (Node 20 left LTS in April 2026): the gateway is also faster there
# (bench/README.md: 0.93x the bare undici proxy against 0.72x on Node 20). CI runs the unit suite and a
# smoke test on Node 24 beside Node 20; --build-arg NODE_IMAGE=node:20-bookworm-slim still works.
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build before the sources are here; the build runs below.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts/build.mjs scripts/esbuild-target.mjs ./scripts/
COPY src ./src
COPY gateway ./gateway
COPY registry-agent ./registry-agent
COPY scripts/demo ./scripts/demo
RUN npm run build

# The demo backend (test/fixtures/backend.mjs) imports `ws`, a devDependency. Rather than pull every
# devDependency (TypeScript, vitest, testcontainers…) into the image, `ws` alone is installed here and
# copied to test/node_modules, where Node finds it from the fixture and nothing else sees it.
# Keep the version equal to package-lock.json's (test/integration/docker-files.test.ts checks).
FROM ${NODE_IMAGE} AS fixture-deps
WORKDIR /deps
RUN npm install --omit=dev --no-audit --no-fund ws@8.23.1

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
# Dependencies first: their layer is rebuilt only when the lock file changes. No scripts: nothing to build here.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY bin ./bin
COPY --from=build /app/dist ./dist
COPY test/fixtures ./test/fixtures
COPY --from=fixture-deps /deps/node_modules ./test/node_modules
# npm does not link a package's own bins on `npm ci`; these make both programs plain commands. The command
# `switchboard` runs the bin through its shebang, which gives Node the gateway's young-generation size
# (--max-semi-space-size=32, see docs/configuration.md): keep CMD on the command, not on `node bin/…`.
RUN chmod +x bin/switchboard.js bin/switchboard-agent.js \
  && ln -s /app/bin/switchboard.js /usr/local/bin/switchboard \
  && ln -s /app/bin/switchboard-agent.js /usr/local/bin/switchboard-agent \
  && mkdir -p /var/lib/switchboard && chown node:node /var/lib/switchboard
# The gateway's snapshot files (registries[].snapshot, configStore.snapshot) need a folder `node` can
# write: the configuration is usually mounted read-only, so the default (beside it) cannot be written.
USER node
EXPOSE 8080 9180
CMD ["switchboard", "--config", "/etc/switchboard/gateway.yaml"]
