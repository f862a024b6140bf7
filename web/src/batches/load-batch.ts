import type { ConsoleBatchDetailQuery, ConsoleBatchFragment, ConsoleTransitionFragment } from '../../../src/generated/gql/graphql';
import type { Api } from '../api/client';
import { ConsoleBatchDetail } from '../api/operations';

/** A batch (up to 100 transitions) with all its transitions, page after page. */
export async function loadBatch(api: Api, id: string): Promise<{ batch: ConsoleBatchFragment; transitions: ConsoleTransitionFragment[] }> {
  const transitions: ConsoleTransitionFragment[] = [];
  let after: string | null = null;
  for (;;) {
    const data: ConsoleBatchDetailQuery = await api.request(ConsoleBatchDetail, { id, after });
    const { transitions: page, ...batch } = data.batch;
    transitions.push(...page.edges.map((edge) => edge.node));
    if (!page.pageInfo.hasNextPage || !page.pageInfo.endCursor) return { batch, transitions };
    after = page.pageInfo.endCursor;
  }
}
