/** One of GraphiQL's opening tabs: an operation and its variables, runnable as it stands with a key. */
export interface GraphiQLTab {
  query: string;
  variables: string;
}

// Lines short enough for the editor's width on a laptop screen.
const KEY_HELP = `# Your API key goes in Headers (below), per tab:
#   {"Authorization": "Bearer sg_..."}
# No key? npm run cli -- accounts create Studio`;

/**
 * GraphiQL's opening tabs: a query, a mutation that starts a video from the sample images Segue
 * serves itself (at `origin`, the API's public address), and a live subscription.
 */
export function defaultTabs(origin: string): GraphiQLTab[] {
  return [
    {
      query: `${KEY_HELP}
# Ctrl-Enter runs it; the book icon opens docs.
query Recent {
  viewer {
    name
    spend { spentUsd reservedUsd budgetUsd }
  }
  transitions(first: 10) {
    edges {
      node {
        id status prompt videoUrl
        error { code message }
      }
    }
  }
}
`,
      variables: '',
    },
    {
      query: `${KEY_HELP}
# A video from Segue's two sample images (with
# FAL_KEY set, fal fetches them: use URLs that
# it can reach). Put the new id in Follow's
# variables to watch it live.
mutation Create($input: CreateTransitionsInput!) {
  createTransitions(input: $input) {
    transitions { id status estimatedCost }
    batch { id status total }
  }
}
`,
      variables: JSON.stringify(
        {
          input: {
            generate: true,
            transitions: [
              {
                frontImageUrl: `${origin}/samples/front.png`,
                tailImageUrl: `${origin}/samples/tail.png`,
                prompt: 'The camera glides as day turns into night',
                transitionType: 'wipe',
                durationSeconds: 5,
              },
            ],
          },
        },
        null,
        2,
      ),
    },
    {
      query: `${KEY_HELP}
# Live progress (SSE, with this tab's headers).
# "id": null: each change to your transitions.
# An id (from Create): that transition as it is
# now, then each change. The square stops it.
subscription Follow($id: ID) {
  transitionUpdated(id: $id) {
    id status version queuePosition attempts
    videoUrl error { code message }
  }
}
`,
      variables: JSON.stringify({ id: null }, null, 2),
    },
  ];
}
