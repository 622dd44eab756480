// Types of flagd-web.js (the module is plain JavaScript; see its header for what it does).
import type { Hook } from "@openfeature/web-sdk";

export interface FlagdExposuresOptions {
  /** The flagd server, e.g. "https://flags.example.com". */
  url: string;
  /** A client key: `flagd keys create --scope client NAME --origin ORIGIN`. */
  key: string;
  /** How long an event may wait for others to share its request (default 1000). */
  batchMs?: number;
  /** The most events in one request (default 50). */
  maxBatch?: number;
  /** The most events waiting; more are dropped and counted (default 1000). */
  maxQueue?: number;
  /** Told of every failure; the default is console.warn. */
  onError?: (error: Error) => void;
}

export interface TrackOptions {
  value?: number;
  properties?: Record<string, unknown>;
}

export interface FlagdExposures {
  /** Add with OpenFeature.addHooks(hook) (or a client's addHooks). */
  readonly hook: Hook;
  /** Queues a conversion `event` by `unit` (the unit the experiment splits, e.g. the targetingKey). */
  track(event: string, unit: string, options?: TrackOptions): void;
  /** Sends every waiting event now; resolves when they are answered, never rejects. */
  flush(): Promise<void>;
  /** Sends what is waiting and stops: later events are dropped, nothing is retried, the page is no longer listened to. */
  close(): Promise<void>;
  /** Events dropped: the queue was full, or they came (or failed) after close(). */
  readonly dropped: number;
  /** Events waiting to be sent. */
  readonly pending: number;
}

export function flagdExposures(options: FlagdExposuresOptions): FlagdExposures;

/** A UUIDv7 (RFC 9562), as the event ids are made. */
export function uuidv7(): string;
