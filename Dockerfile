# syntax=docker/dockerfile:1
# fleetmedic's image: the control worker (default command) and the webhook (`webhook serve`).
# Debian, never Alpine: the Temporal core bridge is a native module built against glibc.
# Build: docker build -t fleetmedic .   Run: see docs/deploy-compose.md and docs/configuration.md.
ARG NODE_IMAGE=node:24-bookworm-slim

# Stage 1: compile TypeScript and prebuild the workflow bundle, with every dependency.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY scripts/node.sh scripts/build-bundle.ts ./scripts/
RUN npm run build && npm run build:bundle

# Stage 2: the runtime, production dependencies only, as an unprivileged user.
FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    FLEETMEDIC_WORKFLOW_BUNDLE=/app/dist/workflow-bundle.js \
    FLEETMEDIC_STATE_DIR=/var/lib/fleetmedic
RUN groupadd --system --gid 10001 fleetmedic \
 && useradd --system --uid 10001 --gid fleetmedic --home-dir /var/lib/fleetmedic --shell /usr/sbin/nologin fleetmedic \
 && install -d -o fleetmedic -g fleetmedic -m 0750 /var/lib/fleetmedic
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY bin ./bin
COPY --from=build /app/dist ./dist
USER 10001:10001
VOLUME ["/var/lib/fleetmedic"]
# The webhook's /healthz, or the worker's metrics endpoint's (set FLEETMEDIC_METRICS_PORT).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["node", "bin/healthcheck.js"]
ENTRYPOINT ["node", "bin/fleetmedic.js"]
CMD ["worker"]
