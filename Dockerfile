# mcp-bastion container image.
#   docker build -t mcp-bastion .
#   docker run --read-only --tmpfs /tmp -v $PWD/bastion.yaml:/etc/bastion/bastion.yaml:ro -p 8080:8080 mcp-bastion
# The config must listen on 0.0.0.0 (with publicUrl set) to be reachable from outside the container.

# ---- build: full dependencies, compile TypeScript to dist/ ----
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY schema ./schema
RUN npm run build

# ---- runtime: production dependencies only, non-root, read-only friendly ----
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    NPM_CONFIG_UPDATE_NOTIFIER=false
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
COPY --from=build /src/schema ./schema
# bastion on PATH; the config (and its lockfile, bastion.lock.json, beside it) is mounted at /etc/bastion.
RUN ln -s /app/dist/cli/main.js /usr/local/bin/bastion && chmod 0755 /app/dist/cli/main.js \
 && mkdir -p /etc/bastion && chown node:node /etc/bastion
# The image's `node` user (uid 1000). Nothing under /app is writable by it.
USER 1000:1000
EXPOSE 8080 9091
# /healthz is answered by the MCP listener (8080 unless the config says otherwise).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.BASTION_HEALTH_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["bastion", "serve", "--config", "/etc/bastion/bastion.yaml"]
