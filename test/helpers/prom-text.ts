/**
 * A strict parser of the Prometheus text exposition format (0.0.4), for
 * tests: it throws on anything a Prometheus server would refuse or that the
 * format forbids (a malformed name, label or value, a TYPE after samples, a
 * family split in two, a duplicate series, a histogram whose buckets are
 * not cumulative or whose +Inf bucket differs from its count).
 */

export type Sample = { name: string; labels: Record<string, string>; value: number };

export type Family = {
  name: string;
  type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
  help: string | undefined;
  samples: Sample[];
};

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

/** A sample value as Prometheus reads it: Go's ParseFloat, which takes NaN and Inf in any case. */
function parseValue(text: string, line: number): number {
  const special = text.toLowerCase();
  if (special === "nan") return Number.NaN;
  if (special === "+inf" || special === "inf") return Number.POSITIVE_INFINITY;
  if (special === "-inf") return Number.NEGATIVE_INFINITY;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) {
    throw new Error(`line ${line}: bad value ${JSON.stringify(text)}`);
  }
  return Number(text);
}

/** Parses `{a="x",b="y"}` starting at `text[start]` === "{"; returns the labels and the index after "}". */
function parseLabels(
  text: string,
  start: number,
  line: number,
): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = start + 1;
  for (;;) {
    if (text[i] === "}") return { labels, end: i + 1 };
    const eq = text.indexOf("=", i);
    if (eq === -1) throw new Error(`line ${line}: label without "="`);
    const name = text.slice(i, eq);
    if (!LABEL_NAME.test(name)) throw new Error(`line ${line}: bad label name ${name}`);
    if (name in labels) throw new Error(`line ${line}: label ${name} twice`);
    if (text[eq + 1] !== '"') throw new Error(`line ${line}: label value not quoted`);
    let value = "";
    let j = eq + 2;
    for (;;) {
      const c = text[j];
      if (c === undefined) throw new Error(`line ${line}: unterminated label value`);
      if (c === '"') break;
      if (c === "\\") {
        const next = text[j + 1];
        if (next === "\\") value += "\\";
        else if (next === '"') value += '"';
        else if (next === "n") value += "\n";
        else throw new Error(`line ${line}: bad escape \\${next}`);
        j += 2;
        continue;
      }
      if (c === "\n") throw new Error(`line ${line}: raw newline in a label value`);
      value += c;
      j++;
    }
    labels[name] = value;
    i = j + 1;
    if (text[i] === ",") i++;
    else if (text[i] !== "}") throw new Error(`line ${line}: expected "," or "}" after a label`);
  }
}

/** The family a sample name belongs to (`x_bucket` of histogram `x`, …). */
function familyOf(name: string, families: Map<string, Family>): Family | undefined {
  const direct = families.get(name);
  if (direct) return direct;
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!name.endsWith(suffix)) continue;
    const family = families.get(name.slice(0, -suffix.length));
    if (family && (family.type === "histogram" || family.type === "summary")) return family;
  }
  return undefined;
}

function checkHistogram(family: Family): void {
  const series = new Map<string, { buckets: Array<[number, number]>; count?: number }>();
  for (const sample of family.samples) {
    const { le, ...rest } = sample.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const entry = series.get(key) ?? { buckets: [] };
    series.set(key, entry);
    if (sample.name === `${family.name}_bucket`) {
      if (le === undefined) throw new Error(`${family.name}: bucket without le`);
      entry.buckets.push([parseValue(le, 0), sample.value]);
    } else if (sample.name === `${family.name}_count`) {
      entry.count = sample.value;
    } else if (sample.name !== `${family.name}_sum`) {
      throw new Error(`${family.name}: unexpected sample ${sample.name}`);
    }
  }
  for (const [key, { buckets, count }] of series) {
    const last = buckets.at(-1);
    if (!last || last[0] !== Number.POSITIVE_INFINITY) {
      throw new Error(`${family.name}${key}: no +Inf bucket`);
    }
    for (let i = 1; i < buckets.length; i++) {
      const [le, value] = buckets[i] as [number, number];
      const [prevLe, prevValue] = buckets[i - 1] as [number, number];
      if (le <= prevLe || value < prevValue) {
        throw new Error(`${family.name}${key}: buckets not increasing`);
      }
    }
    if (count !== last[1]) throw new Error(`${family.name}${key}: +Inf bucket is not the count`);
  }
}

/** Parses an exposition; throws on the first thing that breaks the format. */
export function parsePrometheusText(text: string): Map<string, Family> {
  if (!text.endsWith("\n")) throw new Error("the exposition must end with a newline");
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  /** Families already left: one appearing again is split in two. */
  const closed = new Set<string>();
  let current: Family | undefined;
  const enter = (family: Family, line: number) => {
    if (family === current) return;
    if (closed.has(family.name)) throw new Error(`line ${line}: family ${family.name} split`);
    if (current) closed.add(current.name);
    current = family;
  };
  const lines = text.slice(0, -1).split("\n");
  lines.forEach((raw, index) => {
    const line = index + 1;
    if (raw === "") return;
    if (raw.startsWith("#")) {
      const match = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(raw);
      if (!match) return; // a plain comment
      const [, kind, name = "", rest = ""] = match;
      if (!METRIC_NAME.test(name)) throw new Error(`line ${line}: bad metric name ${name}`);
      let family = families.get(name);
      if (!family) {
        family = { name, type: "untyped", help: undefined, samples: [] };
        families.set(name, family);
      }
      enter(family, line);
      if (kind === "TYPE") {
        if (!TYPES.has(rest)) throw new Error(`line ${line}: unknown type ${rest}`);
        if (family.samples.length > 0) throw new Error(`line ${line}: TYPE after samples`);
        family.type = rest as Family["type"];
      } else {
        if (family.help !== undefined) throw new Error(`line ${line}: HELP twice for ${name}`);
        family.help = rest;
      }
      return;
    }
    const nameEnd = raw.search(/[{ ]/);
    if (nameEnd <= 0) throw new Error(`line ${line}: no sample name`);
    const name = raw.slice(0, nameEnd);
    if (!METRIC_NAME.test(name)) throw new Error(`line ${line}: bad metric name ${name}`);
    let labels: Record<string, string> = {};
    let rest = raw.slice(nameEnd);
    if (rest.startsWith("{")) {
      const parsed = parseLabels(raw, nameEnd, line);
      labels = parsed.labels;
      rest = raw.slice(parsed.end);
    }
    const parts = rest.split(" ");
    if (parts[0] !== "" || parts.length < 2 || parts.length > 3) {
      throw new Error(`line ${line}: expected " value [timestamp]"`);
    }
    const value = parseValue(parts[1] as string, line);
    if (parts[2] !== undefined && !/^-?\d+$/.test(parts[2])) {
      throw new Error(`line ${line}: bad timestamp`);
    }
    let family = familyOf(name, families);
    if (!family) {
      family = { name, type: "untyped", help: undefined, samples: [] };
      families.set(name, family);
    }
    enter(family, line);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(key)) throw new Error(`line ${line}: duplicate series ${key}`);
    seen.add(key);
    if (family.type === "counter" && !(value >= 0)) {
      throw new Error(`line ${line}: counter ${name} is ${value}`);
    }
    family.samples.push({ name, labels, value });
  });
  for (const family of families.values()) {
    if (family.type === "histogram") checkHistogram(family);
  }
  return families;
}

/** The value of the one sample of `name` whose labels include `labels`; throws if not exactly one. */
export function sampleValue(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number {
  const family = familyOf(name, families);
  const matches = (family?.samples ?? []).filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (matches.length !== 1) {
    throw new Error(`${matches.length} samples of ${name}${JSON.stringify(labels)}`);
  }
  return (matches[0] as Sample).value;
}
