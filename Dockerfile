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
ENV NODE_ENV=production ACR_MIRROR_CONFIG=/etc/acr-mirror/config.toml
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY config.toml /etc/acr-mirror/config.toml
# The default config serves loopback and keeps the cache in ./data; the image serves private networks (clients
# arrive through the container network) and keeps the cache in the /data volume. Mount your own config to change it.
RUN sed -i 's|^dir = "data"|dir = "/data"|; s|^listen = "127.0.0.1:5000"|listen = "0.0.0.0:5000"|; s|^allow = \[.*\]|allow = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "fc00::/7", "::1/128"]|' /etc/acr-mirror/config.toml \
  && mkdir -p /data && chown node:node /data
USER node
VOLUME /data
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=3s CMD node -e "fetch('http://127.0.0.1:5000/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "/app/dist/main.js"]
CMD ["serve"]
