# 0xbtcpay: watch-only 0xBitcoin payment gateway.
#
#   docker build -t 0xbtcpay .
#   docker run -d --name 0xbtcpay \
#     -v /srv/0xbtcpay/config.json:/etc/0xbtcpay/config.json:ro \
#     -v 0xbtcpay-data:/data \
#     -e OXBTCPAY_XPUB -e OXBTCPAY_RPC_URL \
#     -p 127.0.0.1:8888:8888 -p 8080:8080 \
#     0xbtcpay
#
# The config must set database.path under /data and private.host "0.0.0.0"
# (see docs/production.md, "Docker"). Built and run for real, with podman, by
# `npm run docker:verify` (test/docker/verify.sh).

# --- build: TypeScript to JavaScript (dist/). Needs the devDependencies (the
# compiler, tsx for the build script) but no native module: --ignore-scripts
# skips better-sqlite3's compile and anvil's postinstall in this stage.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY contracts-abi ./contracts-abi
COPY config ./config
COPY src ./src
RUN npm run build

# --- deps: production dependencies only (no tsx, no TypeScript, no anvil).
# NOTE: --omit=optional too: TypeScript is an optional peer of viem, ox and
# abitype, so the lockfile marks it devOptional, which --omit=dev alone keeps.
# TypeScript is the only optional package of the production tree.
# better-sqlite3 is compiled from its own sources, against the Node headers
# that the base image ships in /usr/local/include/node: nothing is downloaded
# but npm packages (no prebuilt binary, no headers tarball). Then everything
# but the addon itself goes: object files, the SQLite sources, the C++
# sources. Source maps and TypeScript files (type declarations, viem's
# sources) are never loaded at run time: half of node_modules, gone too.
FROM node:20-bookworm-slim AS deps
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
ENV npm_config_nodedir=/usr/local \
  npm_config_build_from_source=true
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund \
  && find node_modules -type f \( -name "*.map" -o -name "*.ts" -o -name "*.mts" -o -name "*.cts" \) -delete \
  && cd node_modules/better-sqlite3 \
  && test -f build/Release/better_sqlite3.node \
  && find build -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} + \
  && find build/Release -mindepth 1 ! -name better_sqlite3.node -exec rm -rf {} + \
  && rm -rf deps src binding.gyp

# --- runtime: node, the compiled daemon and its production dependencies. No
# compiler, no npm cache, no root.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
RUN groupadd --system --gid 10001 0xbtcpay \
  && useradd --system --uid 10001 --gid 0xbtcpay --home-dir /nonexistent --no-create-home \
    --shell /usr/sbin/nologin 0xbtcpay \
  && mkdir -p /data /etc/0xbtcpay \
  && chown 0xbtcpay:0xbtcpay /data \
  && chmod 0700 /data
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
USER 0xbtcpay
VOLUME /data
# 8888: private JSON-RPC (shop server only); 8080: public status API and
# checkout page; 9464: ops listener (/livez, /readyz, /metrics).
EXPOSE 8888 8080 9464
# NOTE: /livez, not /readyz: an unhealthy container gets restarted or taken
# out of rotation, and a restart cures neither a slow RPC provider nor a
# stalled chain. /readyz is for monitoring (docs/operations.md, "Health and metrics"). The ops
# listener stays on 127.0.0.1 (ops.host) inside the container; this check
# runs in the container's own network namespace. No curl in the image: node
# does the request. Change the port here (--health-cmd) if ops.port changes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9464/livez',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM (docker stop): the daemon finishes the current batch and closes the
# database; a second signal forces it.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/bin/0xbtcpay"]
CMD ["serve", "--config", "/etc/0xbtcpay/config.json"]
