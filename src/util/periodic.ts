/**
 * A job run at start and then every `intervalMs` (never two runs at once), until stopped: the
 * background work of a server (expiry, sweeps). A failed run is reported and the next one comes on
 * schedule.
 */
export interface PeriodicJob {
  /** Runs the job now (or joins the run in progress); resolves when it ended. */
  runNow(): Promise<void>;
  /** No more runs; waits for the one in progress. */
  stop(): Promise<void>;
}

export function startPeriodic(
  job: () => Promise<unknown>,
  intervalMs: number,
  onError: (error: unknown) => void,
): PeriodicJob {
  let stopped = false;
  let running: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  const runNow = (): Promise<void> => {
    running ??= job()
      .then(
        () => undefined,
        (error) => {
          if (!stopped) onError(error);
        },
      )
      .finally(() => {
        running = undefined;
      });
    return running;
  };
  const tick = () => {
    void runNow().then(() => {
      if (stopped) return;
      timer = setTimeout(tick, intervalMs);
      timer.unref();
    });
  };
  tick();
  return {
    runNow,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
