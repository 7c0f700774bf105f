/**
 * Keeps the pre-signed OCSP answers ready (RFC 5019 §2.1.1, DESIGN §7), so verifiers are answered
 * without a signature on the request path:
 *
 * - a sweep walks every certificate in serial order, in batches, and pre-signs the answers that are
 *   missing, reflect an older change, or near their nextUpdate; it starts at once and runs again
 *   every `sweepIntervalMs` (well inside the refresh margin, so no answer lapses);
 * - a poller reads the lifecycle events after the last one it saw (every 200 ms by default) and
 *   re-signs the changed certificates at once: after a revocation or hold the next request finds the
 *   new answer ready.
 *
 * The poller is for speed only. Correctness does not depend on it: the responder checks each
 * pre-signed answer against the certificate's latest change when it serves it.
 *
 * On PostgreSQL, event ids come from a sequence and transactions commit in any order, so an event can
 * become visible after a later id was already read. Ids skipped over are remembered for a minute
 * and looked for again at each poll (an id whose transaction rolled back never appears and is
 * forgotten). SQLite commits one writer at a time, in id order.
 */
import type { Kysely } from "kysely";
import { changeSequence } from "../registry/lifecycle.js";
import type { RegistrySchema } from "../registry/schema.js";
import type { OcspResponder } from "./ocsp.js";

export interface OcspRefresherOptions {
  /** How often lifecycle events are polled (default 200 ms). */
  pollIntervalMs?: number;
  /** Pause between two full sweeps (default 10 minutes). */
  sweepIntervalMs?: number;
  /** Certificates read per sweep step (default 500). */
  batchSize?: number;
  /**
   * Whether the first sweep starts at once (default) or after `sweepIntervalMs`: several responder
   * processes restarting together need not all walk the table at the same moment.
   */
  sweepOnStart?: boolean;
  /** Failures of a poll or sweep step; the next one retries. */
  onError?: (error: unknown) => void;
}

/** How long a skipped event id is looked for (a transaction open longer is not expected). */
const GAP_LIFETIME_MS = 60_000;
const MAX_GAPS = 10_000;
/** Events read per poll; a larger backlog is read over the following polls. */
const EVENTS_PER_POLL = 2_000;

export interface RefresherState {
  /** The last lifecycle event id the poller has handled. */
  readonly cursor: number;
  readonly lastPollAt: string | undefined;
  readonly sweepsCompleted: number;
  readonly lastSweepAt: string | undefined;
  /** Answers signed by the refresher since it started. */
  readonly presigned: number;
}

export class OcspRefresher {
  private cursor = 0;
  private readonly gaps = new Map<number, number>();
  private pollTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();
  private stopped = true;
  /** Set by stop(): a sweep in progress ends at its next step. */
  private stopRequested = false;
  private lastPollAt: string | undefined;
  private lastSweepAt: string | undefined;
  private sweepsCompleted = 0;
  private presigned = 0;
  private readonly pollIntervalMs: number;
  private readonly sweepIntervalMs: number;
  private readonly batchSize: number;

  constructor(
    private readonly responder: OcspResponder,
    private readonly db: Kysely<RegistrySchema>,
    private readonly options: OcspRefresherOptions = {},
  ) {
    this.pollIntervalMs = options.pollIntervalMs ?? 200;
    this.sweepIntervalMs = options.sweepIntervalMs ?? 10 * 60_000;
    this.batchSize = options.batchSize ?? 500;
  }

  /**
   * Starts polling from the current change sequence, and the first sweep (which covers what changed
   * before). Returns once polling has started; the sweep goes on in the background.
   */
  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    this.stopRequested = false;
    this.cursor = await changeSequence(this.db);
    this.schedulePoll();
    this.scheduleSweep(this.options.sweepOnStart === false ? this.sweepIntervalMs : 0);
  }

  /** Stops both timers and waits for the step in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopRequested = true;
    clearTimeout(this.pollTimer);
    clearTimeout(this.sweepTimer);
    await this.running;
  }

  get state(): RefresherState {
    return {
      cursor: this.cursor,
      lastPollAt: this.lastPollAt,
      sweepsCompleted: this.sweepsCompleted,
      lastSweepAt: this.lastSweepAt,
      presigned: this.presigned,
    };
  }

  /** Runs `step` after the one in progress: polls and sweep steps never overlap. */
  private exclusive<T>(step: () => Promise<T>): Promise<T> {
    const next = this.running.then(step);
    this.running = next.catch(() => undefined);
    return next;
  }

  private schedulePoll(): void {
    if (this.stopped) return;
    this.pollTimer = setTimeout(() => {
      this.pollOnce()
        .catch((error) => this.options.onError?.(error))
        .finally(() => this.schedulePoll());
    }, this.pollIntervalMs);
    this.pollTimer.unref();
  }

  private scheduleSweep(delay: number): void {
    if (this.stopped) return;
    this.sweepTimer = setTimeout(() => {
      this.sweepOnce()
        .catch((error) => this.options.onError?.(error))
        .finally(() => this.scheduleSweep(this.sweepIntervalMs));
    }, delay);
    this.sweepTimer.unref();
  }

  /** Re-signs the certificates changed since the last poll; returns how many answers were signed. */
  pollOnce(): Promise<number> {
    return this.exclusive(async () => {
      const now = Date.now();
      for (const [id, deadline] of this.gaps) if (deadline < now) this.gaps.delete(id);
      let query = this.db.selectFrom("lifecycle_events").select(["id", "serial"]);
      const gapIds = [...this.gaps.keys()].slice(0, 1000);
      query =
        gapIds.length > 0
          ? query.where((eb) => eb.or([eb("id", ">", this.cursor), eb("id", "in", gapIds)]))
          : query.where("id", ">", this.cursor);
      const events = await query.orderBy("id").limit(EVENTS_PER_POLL).execute();
      const serials = new Set<string>();
      let expected = this.cursor + 1;
      for (const event of events) {
        const id = Number(event.id);
        serials.add(event.serial);
        if (this.gaps.delete(id) || id <= this.cursor) continue;
        for (; expected < id && this.gaps.size < MAX_GAPS; expected++)
          this.gaps.set(expected, now + GAP_LIFETIME_MS);
        expected = id + 1;
        this.cursor = id;
      }
      const signed = await this.responder.presign([...serials]);
      this.presigned += signed;
      this.lastPollAt = new Date().toISOString();
      return signed;
    });
  }

  /** One full pass over the certificates; returns how many answers were signed. */
  async sweepOnce(): Promise<number> {
    let after = "";
    let signed = 0;
    for (;;) {
      if (this.stopRequested) break;
      const step = await this.exclusive(async () => {
        const rows = await this.db
          .selectFrom("certificates")
          .select("serial")
          .where("serial", ">", after)
          .orderBy("serial")
          .limit(this.batchSize)
          .execute();
        const count = rows.length > 0 ? await this.responder.presign(rows.map((r) => r.serial)) : 0;
        return { rows: rows.length, last: rows.at(-1)?.serial, count };
      });
      signed += step.count;
      this.presigned += step.count;
      if (step.rows < this.batchSize || step.last === undefined) break;
      after = step.last;
    }
    this.sweepsCompleted++;
    this.lastSweepAt = new Date().toISOString();
    return signed;
  }
}
