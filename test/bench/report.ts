/**
 * The bench's output: one JSON object per figure, then a summary line.
 * Progress goes to stderr so stdout stays machine-readable.
 */

/** A target on the figure's value or on its ratio to the baseline. */
export type Target =
  | { on: "value" | "ratio"; op: ">=" | "<=" | "<"; limit: number }
  | { on: "check"; text: string; passed: boolean };

export type Figure = {
  name: string;
  /** null when the phase that measures it failed. */
  value: number | null;
  unit: string;
  baseline: number | null;
  ratio: number | null;
  /** Human-readable target, e.g. "ratio >= 0.8", or null when there is none yet. */
  target: string | null;
  ok: boolean;
};

/** Rounds to a precision that keeps the figure readable (3 significant digits, at least integers above 100). */
export function round(value: number): number {
  if (!Number.isFinite(value)) return value;
  const magnitude = Math.abs(value);
  if (magnitude >= 100) return Math.round(value);
  if (magnitude >= 10) return Math.round(value * 10) / 10;
  if (magnitude >= 1) return Math.round(value * 100) / 100;
  return Math.round(value * 1000) / 1000;
}

function describeTarget(target: Target): string {
  if (target.on === "check") return target.text;
  return `${target.on === "ratio" ? "ratio " : ""}${target.op} ${target.limit}`;
}

function meets(target: Target, value: number, ratio: number | null): boolean {
  if (target.on === "check") return target.passed;
  const subject = target.on === "ratio" ? ratio : value;
  if (subject === null || !Number.isFinite(subject)) return false;
  if (target.op === ">=") return subject >= target.limit;
  if (target.op === "<=") return subject <= target.limit;
  return subject < target.limit;
}

/** Builds a figure line; `ok` is true for a figure with no target. */
export function figure(
  name: string,
  value: number,
  unit: string,
  { baseline = null, target }: { baseline?: number | null; target?: Target } = {},
): Figure {
  const ratio = baseline !== null && baseline !== 0 ? round(value / baseline) : null;
  return {
    name,
    value: round(value),
    unit,
    baseline: baseline === null ? null : round(baseline),
    ratio,
    target: target ? describeTarget(target) : null,
    ok: target
      ? meets(target, value, baseline !== null && baseline !== 0 ? value / baseline : null)
      : true,
  };
}

/** The line of a figure whose phase failed before measuring it. */
export function failedFigure(name: string, unit: string): Figure {
  return { name, value: null, unit, baseline: null, ratio: null, target: null, ok: false };
}

const startedAt = performance.now();

/** Progress line on stderr, prefixed with the elapsed time. */
export function progress(message: string): void {
  const elapsed = ((performance.now() - startedAt) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[bench ${elapsed}s] ${message}\n`);
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** The p-th percentile (0..100) by nearest rank. */
export function percentile(values: ArrayLike<number>, p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}
