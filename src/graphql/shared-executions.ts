import type { DocumentNode, ExecutionResult } from 'graphql';
import { SharedTexts } from '../events/shared-texts.ts';
import type { Metrics } from '../metrics.ts';
import type { Context } from './context.ts';

/**
 * One execution of an event for every subscriber of this process that would get the same result.
 * The viewers of one batch (a studio's screens, a team's browsers) subscribe with the same query
 * and variables as the same account, and every change reaches all of them at once, as the same
 * object (a transition's row, src/events/rows.ts; a batch's progress, one row per message,
 * src/events/streams.ts): executing it once per subscriber repeated the same resolvers (and the
 * reads of relations asked for) as many times as there were viewers, all in one turn. Each
 * subscriber still has its own stream, message and write.
 *
 * Two subscriptions share a result only when everything execution reads is the same: the event
 * object itself, the parsed document (one object per query text, from Yoga's parser cache; a
 * document parsed apart is simply not shared), the operation name, the variables as sent, and who
 * is asking, down to a browser token's scope. The resolvers read nothing else of the context
 * that differs between two such subscribers (its loaders keep no cache).
 *
 * A result is joinable only in the turn of the event loop that started it (the subscribers of one
 * event are all handed it in one turn): nothing is kept past it, so an idle subscriber holds no
 * result, and one that reads an event later, from its buffer, executes it anew.
 */
export class SharedExecutions {
  private readonly documents = new WeakMap<DocumentNode, number>();
  /** Keys, each kept once: the viewers who share results hold one string between them. */
  private readonly keys = new SharedTexts(20_000, 1_024);
  private nextDocument = 0;
  private joinable = new WeakMap<object, Map<string, Promise<ExecutionResult>>>();
  private clearing = false;

  /** `results` counts each result handed to a subscription (snapshots included): executed for it, or shared. */
  constructor(private readonly results?: Metrics['subscriptionResults']) {}

  /**
   * What a subscription's results are keyed by, besides the event: computed once per
   * subscription, at its first event. Null without a principal, or when its variables cannot be
   * printed (never shared).
   */
  keyOf(args: { document: DocumentNode; operationName?: string | null; variableValues?: unknown; contextValue: Pick<Context, 'principal'> }): string | null {
    const principal = args.contextValue.principal;
    if (!principal) return null;
    let document = this.documents.get(args.document);
    if (document === undefined) this.documents.set(args.document, (document = this.nextDocument++));
    let variables: string;
    try {
      variables = JSON.stringify(args.variableValues ?? null);
    } catch {
      return null;
    }
    const scope = principal.kind === 'token' ? `${principal.scope.batchId ?? ''}/${principal.scope.transitionId ?? ''}` : '';
    return this.keys.of(`${document}\u0000${args.operationName ?? ''}\u0000${variables}\u0000${principal.kind}\u0000${principal.accountId}\u0000${scope}`);
  }

  /** The result of `event` for subscriptions keyed `key`: joined if one is under way this turn, else run by `execute`. */
  run(event: unknown, key: string | null, execute: () => Promise<ExecutionResult>): Promise<ExecutionResult> {
    if (key === null || typeof event !== 'object' || event === null) return this.execute(execute);
    let results = this.joinable.get(event);
    const open = results?.get(key);
    if (open) {
      this.results?.inc({ execution: 'shared' });
      return open;
    }
    const result = this.execute(execute);
    if (!results) this.joinable.set(event, (results = new Map()));
    results.set(key, result);
    this.clearAfterThisTurn();
    return result;
  }

  private execute(execute: () => Promise<ExecutionResult>) {
    this.results?.inc({ execution: 'executed' });
    return execute();
  }

  private clearAfterThisTurn() {
    if (this.clearing) return;
    this.clearing = true;
    setImmediate(() => {
      this.clearing = false;
      this.joinable = new WeakMap();
    });
  }
}
