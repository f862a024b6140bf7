import { defineConfig } from 'prisma/config';

// The same default as src/config.ts, so `npm start` works against a local PostgreSQL as is.
const url = process.env.DATABASE_URL || 'postgresql://postgres@127.0.0.1:5432/segue';

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url },
});
