import { graphql } from '../../src/generated/gql/index.ts';

/** What the console end-to-end test checks behind the page (names unique across the project). */
export const E2eGeneratedTransitions = graphql(`
  query E2eGeneratedTransitions {
    generatedTransitions(first: 10) {
      edges { node { id status durationSeconds transitions { id } } }
    }
  }
`);
