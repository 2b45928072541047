# syntax=docker/dockerfile:1
# Build stage: compiles TypeScript and the better-sqlite3 native addon.
FROM node:20-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-fund --no-audit
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

# Run stage: only the compiled code, production dependencies and the default config.
FROM node:20-bookworm-slim
# Where the image runs decides these, not the config: the cache in the /data volume, the registry API on every
# address of the container (clients arrive through the container network), private networks allowed. They override
# a mounted config.toml (README: "Command line"); set them with -e to change them.
ENV NODE_ENV=production ACR_MIRROR_CONFIG=/etc/acr-mirror/config.toml \
    ACR_MIRROR_LISTEN=0.0.0.0:5000 ACR_MIRROR_STORAGE_DIR=/data \
    ACR_MIRROR_ALLOW=10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,127.0.0.0/8,fc00::/7,::1/128
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY config.toml /etc/acr-mirror/config.toml
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME /data
EXPOSE 5000
# Probes /healthz where the configuration (ACR_MIRROR_LISTEN above, or -e) says the mirror listens.
HEALTHCHECK --interval=30s --timeout=5s CMD ["node", "/app/dist/main.js", "healthcheck"]
ENTRYPOINT ["node", "/app/dist/main.js"]
CMD ["serve"]
