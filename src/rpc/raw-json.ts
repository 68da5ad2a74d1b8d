/**
 * Finds the exact source text of a member of a JSON document, so the shop's
 * `data` is stored and handed back byte for byte as it was sent (big numbers,
 * key order and all), not as JSON.parse + JSON.stringify would remake it.
 */
import { randomBytes } from "node:crypto";

const WHITESPACE = new Set([" ", "\t", "\n", "\r"]);
const LITERAL_END = new Set([",", "}", "]", " ", "\t", "\n", "\r"]);

/**
 * The source text of the value at `path` (object keys, or array indexes for
 * the calls of a batch, from the root), or undefined if absent. With
 * duplicate keys the last one wins, as in JSON.parse. `text` must already be
 * valid JSON (JSON.parse it first).
 */
export function rawMember(text: string, path: readonly (string | number)[]): string | undefined {
  let pos = 0;
  let found: [number, number] | undefined;

  const skipWhitespace = () => {
    while (pos < text.length && WHITESPACE.has(text[pos] as string)) pos++;
  };

  const readString = (): string => {
    const start = pos;
    pos++;
    while (pos < text.length && text[pos] !== '"') pos += text[pos] === "\\" ? 2 : 1;
    pos++;
    return JSON.parse(text.slice(start, pos)) as string;
  };

  // Iterative over containers would be longer; recursion depth is bounded by
  // the request body limit and guarded by the caller's try/catch.
  const readValue = (depth: number, onPath: boolean): void => {
    skipWhitespace();
    const ch = text[pos];
    if (ch === "{" || ch === "[") {
      const isObject = ch === "{";
      const close = isObject ? "}" : "]";
      pos++;
      skipWhitespace();
      if (text[pos] === close) {
        pos++;
        return;
      }
      for (let index = 0; ; index++) {
        let matches = false;
        if (isObject) {
          skipWhitespace();
          const key = readString();
          skipWhitespace();
          pos++; // ':'
          matches = onPath && key === path[depth];
        } else {
          matches = onPath && index === path[depth];
        }
        skipWhitespace();
        const start = pos;
        readValue(depth + 1, matches);
        if (matches && depth === path.length - 1) found = [start, pos];
        skipWhitespace();
        if (text[pos] === ",") {
          pos++;
          continue;
        }
        pos++; // close
        return;
      }
    }
    if (ch === '"') {
      readString();
      return;
    }
    while (pos < text.length && !LITERAL_END.has(text[pos] as string)) pos++;
  };

  readValue(0, path.length > 0);
  return found ? text.slice(found[0], found[1]) : undefined;
}

/** A JSON value kept as its source text; {@link stringifyJson} writes it as is. */
export class RawJson {
  readonly text: string;
  /** `text` must be one valid JSON value (as stored from a parsed request). */
  constructor(text: string) {
    this.text = text;
  }
}

/**
 * JSON.stringify that writes each {@link RawJson} as its source text, so big
 * numbers, key order and spacing survive (Node 20 has no JSON.rawJSON).
 */
export function stringifyJson(value: unknown): string {
  const raws: string[] = [];
  // NOTE: a random marker per call that has raw values; a string in the value cannot guess it.
  let marker: string | undefined;
  const json = JSON.stringify(value, (_key, member: unknown) => {
    if (!(member instanceof RawJson)) return member;
    marker ??= randomBytes(12).toString("hex");
    return `${marker}:${raws.push(member.text) - 1}`;
  });
  if (marker === undefined) return json;
  return json.replace(new RegExp(`"${marker}:([0-9]+)"`, "g"), (_, index: string) => {
    return raws[Number(index)] ?? "null";
  });
}
