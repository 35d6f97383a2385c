/**
 * Progress lines for long runs: rewritten in place on a terminal, one line
 * every few seconds otherwise (CI logs).
 *
 * @module
 */

/** Formats seconds as `1h02m`, `3m05s` or `12s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  if (s >= 3600) {
    return `${Math.floor(s / 3600)}h${String(Math.floor(s % 3600 / 60)).padStart(2, "0")}m`;
  }
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}

/** A progress printer. */
export class ProgressLine {
  private readonly tty = Deno.stderr.isTerminal();
  private last = 0;
  private active = false;
  private readonly encoder = new TextEncoder();

  /** Shows `text` (throttled to one line per 5 s when not on a terminal, unless `force`). */
  update(text: string, force = false): void {
    const now = performance.now();
    if (this.tty) {
      Deno.stderr.writeSync(this.encoder.encode(`\r\x1b[2K${text}`));
      this.active = true;
    } else if (force || now - this.last > 5000) {
      Deno.stderr.writeSync(this.encoder.encode(`${text}\n`));
      this.last = now;
    }
  }

  /** Ends the in-place line so normal output can follow. */
  done(): void {
    if (this.tty && this.active) Deno.stderr.writeSync(this.encoder.encode("\n"));
    this.active = false;
  }
}

/** A text bar: `[#####.....]`. */
export function bar(fraction: number, width = 20): string {
  const n = Math.max(0, Math.min(width, Math.round(fraction * width)));
  return `[${"#".repeat(n)}${".".repeat(width - n)}]`;
}

/**
 * Ctrl-C handling for training runs: the first SIGINT aborts the returned
 * signal (the loop finishes its step and writes a checkpoint), a second one
 * exits at once with status 130. Call `release()` when the run is over.
 */
export function interruptOnSigint(): { signal: AbortSignal; release: () => void } {
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) Deno.exit(130);
    console.error(
      "\ninterrupted: finishing this step and saving a checkpoint (Ctrl-C again to quit now)",
    );
    controller.abort();
  };
  Deno.addSignalListener("SIGINT", onSigint);
  return {
    signal: controller.signal,
    release: () => Deno.removeSignalListener("SIGINT", onSigint),
  };
}
