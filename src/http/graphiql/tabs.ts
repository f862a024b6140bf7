/** One of GraphiQL's opening tabs: an operation and its variables, runnable as it stands with a key. */
export interface GraphiQLTab {
  query: string;
  variables: string;
}

const KEY_HELP = `# Your API key goes in the Headers editor below (in each tab):
#   {"Authorization": "Bearer sg_..."}
# No key yet? npm run cli -- accounts create "My studio"`;

/**
 * GraphiQL's opening tabs: a query, a mutation that starts a video from the sample images Segue
 * serves itself (at `origin`, the API's public address), and a live subscription.
 */
export function defaultTabs(origin: string): GraphiQLTab[] {
  return [
    {
      query: `${KEY_HELP}
# Run with Ctrl-Enter (or the play button). The book icon opens the docs.
query Recent {
  viewer {
    name
    spend { spentUsd reservedUsd budgetUsd }
  }
  transitions(first: 10) {
    edges {
      node { id status prompt videoUrl error { code message } }
    }
  }
}
`,
      variables: '',
    },
    {
      query: `${KEY_HELP}
# Creates a transition from the two sample images and starts generating it
# (with FAL_KEY set, fal fetches the images itself: use URLs it can reach).
# Copy its id into the Follow tab's variables to watch it live.
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
# Live progress over GraphQL over SSE, with this tab's headers.
# With an id (e.g. from Create) it starts with the transition as it is now, then
# sends every change until you stop it; with "id": null, every change to any of
# your transitions, as it happens.
subscription Follow($id: ID) {
  transitionUpdated(id: $id) {
    id status version queuePosition attempts videoUrl
    error { code message }
  }
}
`,
      variables: JSON.stringify({ id: null }, null, 2),
    },
  ];
}
