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
# (see README.md, "Docker").

# --- build: production dependencies, with the toolchain better-sqlite3 needs
# when no prebuilt binary can be fetched and it compiles from source.
FROM node:20-bookworm-slim AS deps
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# tsx is a runtime dependency: bin/0xbtcpay runs the TypeScript through it.
RUN npm ci --omit=dev && npm cache clean --force

# --- runtime: no compiler, no root.
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
COPY package.json package-lock.json ./
COPY bin ./bin
COPY src ./src
COPY contracts-abi ./contracts-abi
COPY config ./config
USER 0xbtcpay
VOLUME /data
# 8888: private JSON-RPC (shop server only); 8080: public status API.
EXPOSE 8888 8080
ENTRYPOINT ["node", "bin/0xbtcpay"]
CMD ["serve", "--config", "/etc/0xbtcpay/config.json"]
