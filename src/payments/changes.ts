/**
 * The change feed: which payments a commit changed, told to subscribers
 * (status caches, live checkout streams) right after that commit, from the
 * code that committed it, never from a poll of the database.
 */

import type { PaymentStatus } from "../store/payments.ts";

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
  /** After the commit: tells the subscribers what it changed (nothing if it changed nothing). */
  committed(): void;
  /** After a rollback: forgets what the transaction touched. */
  discard(): void;
  /** Subscribes; returns the unsubscribe function. */
  subscribe(listener: ChangeListener): () => void;
  /**
   * Wraps a transaction function: after it commits, the subscribers are
   * told; if it throws (rolled back), what it touched is forgotten.
   */
  around<A extends unknown[], R>(run: (...args: A) => R): (...args: A) => R;
};

export function createChangeFeed({
  onListenerError = () => {},
  onTransitions = () => {},
}: {
  /** A listener threw: the commit stands, the other listeners still run. */
  onListenerError?: (error: unknown) => void;
  /** After a commit that changed statuses: those changes (the in-memory tallies). */
  onTransitions?: (transitions: readonly StatusTransition[]) => void;
} = {}): ChangeFeed {
  const listeners = new Set<ChangeListener>();
  let ids = new Set<string>();
  let head = false;
  let transitions: StatusTransition[] = [];
  const feed: ChangeFeed = {
    touch(id) {
      ids.add(id);
    },
    headMoved() {
      head = true;
    },
    transition(change) {
      transitions.push(change);
    },
    committed() {
      if (transitions.length > 0) {
        const done = transitions;
        transitions = [];
        onTransitions(done);
      }
      if (ids.size === 0 && !head) return;
      const change: PaymentChange = { ids: [...ids], head };
      ids = new Set();
      head = false;
      for (const listener of listeners) {
        try {
          listener(change);
        } catch (error) {
          onListenerError(error);
        }
      }
    },
    discard() {
      ids = new Set();
      head = false;
      transitions = [];
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    around(run) {
      return (...args) => {
        let result: ReturnType<typeof run>;
        try {
          result = run(...args);
        } catch (error) {
          feed.discard();
          throw error;
        }
        feed.committed();
        return result;
      };
    },
  };
  return feed;
}
