import { builder } from './builder.ts';
import './types/transition.ts';
import './types/batch.ts';
import './types/account.ts';
import './types/queries.ts';
import './types/mutations.ts';
import './types/generation.ts';
import './types/subscriptions.ts';
import './types/queue-stats.ts';
import './types/combined.ts';
import './types/api-keys.ts';
import './types/access-tokens.ts';
import './types/deletion.ts';
import './types/image.ts';

export const schema = builder.toSchema({ sortSchema: false });
