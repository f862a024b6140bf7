# Segue: one image for the API and the workers (the command picks the role).
# Node 22 LTS here; the code is tested on Node 20 and kept ready for 22/24.

FROM node:22-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
COPY prisma ./prisma
COPY prisma.config.ts ./
# Dependencies' install scripts are denied in package.json (allowScripts); ours run below.
RUN npm ci --ignore-scripts --no-audit --no-fund && npx prisma generate

FROM node:22-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates ffmpeg \
  && rm -rf /var/lib/apt/lists/*
COPY --from=deps /app/node_modules ./node_modules
COPY --from=deps /app/src/generated ./src/generated
COPY package.json package-lock.json .npmrc prisma.config.ts tsconfig.json ./
COPY prisma ./prisma
COPY src ./src
USER node
EXPOSE 4000
HEALTHCHECK --interval=15s --timeout=3s CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||4000)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# Migrations run once per deploy (the api service does it at start: `npm start` = migrate + serve).
CMD ["npm", "start"]
