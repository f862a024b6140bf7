# syntax=docker/dockerfile:1
# Segue: one image for the API and the workers (the command picks the role).
# Node 22 LTS here; the code is tested on Node 20 and kept ready for 22 and 24.

# ---- build: install everything, generate the Prisma client and typed documents, compile ----
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# Dependencies' install scripts are denied in package.json (allowScripts); ours run below.
RUN npm ci --ignore-scripts --no-audit --no-fund --loglevel=warn
COPY prisma ./prisma
COPY prisma.config.ts codegen.ts tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY web ./web
RUN npx prisma generate \
  && NODE_OPTIONS='--import tsx' npx graphql-codegen --config codegen.ts \
  && npm run build \
  && npm prune --omit=dev --loglevel=warn

# ---- runtime: compiled JavaScript, production dependencies, ffmpeg ----
FROM node:22-bookworm-slim AS runtime
ENV NODE_ENV=production \
    # Fewer malloc arenas and a capped heap keep an API instance's memory flat under load.
    MALLOC_ARENA_MAX=2 \
    NODE_OPTIONS="--max-semi-space-size=2 --max-old-space-size=256" \
    MEDIA_DIR=/data/media
WORKDIR /app
# Debian's ffmpeg (5.x) is preferred at run time; the npm static binary stays as the fallback.
RUN apt-get update \
  && apt-get install -y --no-install-recommends ca-certificates ffmpeg \
  && rm -rf /var/lib/apt/lists/* \
  && mkdir -p /data/media && chown node:node /data/media
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/web/dist ./web/dist
COPY package.json package-lock.json .npmrc prisma.config.ts ./
COPY prisma ./prisma
COPY assets ./assets
# The subtitle font, found next to the compiled code's sources.
COPY src/media/fonts ./src/media/fonts
USER node
EXPOSE 4000
VOLUME ["/data/media"]
# Healthy when /health answers on PORT (the API, or all-in-one) or on OPS_PORT (a worker alone
# serves nothing on PORT: docker-compose.yml gives its workers OPS_PORT).
HEALTHCHECK --interval=15s --timeout=3s CMD node -e "const e=process.env;Promise.any([e.PORT||4000,e.OPS_PORT].filter(Boolean).map(p=>fetch('http://127.0.0.1:'+p+'/health').then(r=>r.ok||Promise.reject()))).then(()=>process.exit(0),()=>process.exit(1))"
# All-in-one by default: migrate, then API and a worker in one process. docker-compose.yml runs
# the roles apart (node dist/main.js api | worker).
CMD ["sh", "-c", "npx prisma migrate deploy && node dist/main.js all"]
