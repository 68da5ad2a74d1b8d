/**
 * The change feed: which payments a commit changed, told to subscribers
 * (status caches, live checkout streams) right after that commit, from the
 * code that committed it, never from a poll of the database.
 */

import { createTaskContext } from "../internal/context.ts";
import type { PaymentStatus, Storage } from "../store/storage.ts";

/** One commit's changes: the payments it re-decided, and whether the head moved (confirmations). */
export type PaymentChange = { ids: readonly string[]; head: boolean };

/** A payment's status changed from `from` to `to`. */
export type StatusTransition = { from: PaymentStatus; to: PaymentStatus };

export type ChangeListener = (change: PaymentChange) => void;

export type ChangeFeed = {
  /** Inside a transaction: payment `id` was re-decided. */
  touch(id: string): void;
  /** Inside a transaction: the head moved. */
  headMoved(): void;
  /** Inside a transaction: a payment's status changed (the tallies learn it after the commit). */
  transition(change: StatusTransition): void;
  /** Subscribes; returns the unsubscribe function. */
  subscribe(listener: ChangeListener): () => void;
  /** Another replica committed `change` (its announce): tells the subscribers. */
  external(change: PaymentChange): void;
  /**
   * `run` as a transaction of `storage` whose changes are collected: the
   * other replicas are told at its commit (Storage.announce), and the
   * subscribers right after it; if it rejects (rolled back), what it
   * touched is forgotten.
   */
  transaction<A extends unknown[], R>(run: (...args: A) => Promise<R>): (...args: A) => Promise<R>;
};

/** What one transaction changed, until it commits. */
type Collected = { ids: Set<string>; head: boolean; transitions: StatusTransition[] };

export function createChangeFeed({
  storage,
  onListenerError = () => {},
  onTransitions = () => {},
}: {
  storage: Pick<Storage, "transaction" | "announce">;
  /** A listener threw: the commit stands, the other listeners still run. */
  onListenerError?: (error: unknown) => void;
  /** After a commit that changed statuses: those changes (the in-memory tallies). */
  onTransitions?: (transitions: readonly StatusTransition[]) => void;
}): ChangeFeed {
  const listeners = new Set<ChangeListener>();
  // NOTE: each transaction collects its own changes: on PostgreSQL several
  // run at once (creates, a cancel, each network's scan).
  const collecting = createTaskContext<Collected>();

  function collected(): Collected {
    const current = collecting.get();
    if (!current) throw new Error("a payment change outside a change-feed transaction");
    return current;
  }

  function tell(change: PaymentChange) {
    for (const listener of listeners) {
      try {
        listener(change);
      } catch (error) {
        onListenerError(error);
      }
    }
  }

  return {
    touch(id) {
      collected().ids.add(id);
    },
    headMoved() {
      collected().head = true;
    },
    transition(change) {
      collected().transitions.push(change);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    external(change) {
      if (change.ids.length > 0 || change.head) tell(change);
    },
    transaction(run) {
      return async (...args) => {
        const changes: Collected = { ids: new Set(), head: false, transitions: [] };
        const result = await storage.transaction(() =>
          collecting.run(changes, async () => {
            const value = await run(...args);
            if (changes.ids.size > 0 || changes.head) {
              await storage.announce({ ids: [...changes.ids], head: changes.head });
            }
            return value;
          }),
        );
        if (changes.transitions.length > 0) onTransitions(changes.transitions);
        if (changes.ids.size > 0 || changes.head)
          tell({ ids: [...changes.ids], head: changes.head });
        return result;
      };
    },
  };
}
