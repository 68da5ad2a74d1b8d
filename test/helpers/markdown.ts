/**
 * Just enough Markdown for test/project/docs.test.ts: the headings of a file
 * with the anchors GitHub gives them, its links, and its tables, each with
 * the line it is on. Fenced code blocks (``` or ~~~) hold no headings, links
 * or tables; inline code holds no links.
 */

export type Heading = { level: number; text: string; anchor: string; line: number };
export type Link = { target: string; line: number };
export type Row = { cells: string[]; line: number };
export type Table = { header: string[]; rows: Row[]; line: number };

/** The lines of `markdown` that are not in a fenced code block, with their 1-based numbers. */
export function proseLines(markdown: string): { text: string; line: number }[] {
  const out: { text: string; line: number }[] = [];
  let fence: string | undefined;
  markdown.split("\n").forEach((text, index) => {
    const marker = /^ {0,3}(`{3,}|~{3,})/.exec(text)?.[1];
    if (fence === undefined && marker !== undefined) {
      fence = marker;
    } else if (fence !== undefined) {
      // A fence closes with at least as many of the same character, and nothing after.
      const close = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(text)?.[1];
      if (close !== undefined && close[0] === fence[0] && close.length >= fence.length) {
        fence = undefined;
      }
    } else {
      out.push({ text, line: index + 1 });
    }
  });
  return out;
}

/**
 * The text GitHub reads a heading's anchor from: inline code, links and
 * emphasis reduced to their text. (Emphasis with `_` and HTML are not
 * undone: a heading here writes snake_case names and `<id>` in code, never
 * `_emphasis_` or a tag.)
 */
export function plainText(inline: string): string {
  return inline
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/`+([^`]*)`+/g, "$1")
    .replace(/\*+/g, "")
    .trim();
}

/**
 * GitHub's anchor of a heading's text (what github-slugger does): lowercase,
 * every character but letters, digits, marks, `-`, `_` and spaces removed,
 * each space a `-`.
 */
export function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "")
    .replace(/ /g, "-");
}

/** The ATX headings of `markdown`, in order; a repeated anchor gets `-1`, `-2`, … as on GitHub. */
export function headings(markdown: string): Heading[] {
  const seen = new Map<string, number>();
  const out: Heading[] = [];
  for (const { text, line } of proseLines(markdown)) {
    const match = /^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/.exec(text);
    if (!match) continue;
    const inline = match[2] ?? "";
    // NOTE: github-slugger's own loop: `base` counts its repeats, and an
    // anchor already taken (also by a heading that reads "x-1") is skipped.
    const base = slug(plainText(inline));
    let anchor = base;
    while (seen.has(anchor)) {
      const count = (seen.get(base) ?? 0) + 1;
      seen.set(base, count);
      anchor = `${base}-${count}`;
    }
    seen.set(anchor, 0);
    out.push({ level: (match[1] ?? "").length, text: inline.trim(), anchor, line });
  }
  return out;
}

/** The targets of the inline links and images of `markdown`, and of its link definitions. */
export function links(markdown: string): Link[] {
  const out: Link[] = [];
  for (const { text, line } of proseLines(markdown)) {
    const definition = /^ {0,3}\[[^\]]+\]:\s*(\S+)/.exec(text);
    if (definition) {
      out.push({ target: definition[1] ?? "", line });
      continue;
    }
    const prose = text.replace(/(`+)(?:(?!\1).)+?\1/g, "");
    for (const match of prose.matchAll(/\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)/g)) {
      out.push({ target: match[1] ?? "", line });
    }
  }
  return out;
}

/** The tables of `markdown`: each one's header cells and body rows, cells trimmed. */
export function tables(markdown: string): Table[] {
  const out: Table[] = [];
  const lines = proseLines(markdown);
  let current: Table | undefined;
  lines.forEach(({ text, line }, index) => {
    if (!text.trimStart().startsWith("|")) {
      current = undefined;
      return;
    }
    const cells = cellsOf(text);
    if (current) {
      if (!isDelimiter(cells)) current.rows.push({ cells, line });
      return;
    }
    // A table starts with its header row, right above its delimiter row.
    const next = lines[index + 1];
    if (next?.line === line + 1 && isDelimiter(cellsOf(next.text))) {
      current = { header: cells, rows: [], line };
      out.push(current);
    }
  });
  return out;
}

function isDelimiter(cells: readonly string[]): boolean {
  return cells.length > 0 && cells.every((cell) => /^:?-{3,}:?$/.test(cell));
}

/** A table row's cells: split at each `|` that is not escaped. */
function cellsOf(text: string): string[] {
  return text
    .trim()
    .replace(/^\|/, "")
    .replace(/(?<!\\)\|$/, "")
    .split(/(?<!\\)\|/)
    .map((cell) => cell.trim());
}

/**
 * The lines under the heading whose text is `text` (exactly), up to the next
 * heading of its level or above: `start` (the heading's line) to `end`
 * (excluded). Undefined when there is no such heading.
 */
export function section(
  markdown: string,
  text: string,
): { start: number; end: number } | undefined {
  const all = headings(markdown);
  const heading = all.find((each) => each.text === text);
  if (!heading) return undefined;
  const next = all.find((each) => each.line > heading.line && each.level <= heading.level);
  return { start: heading.line, end: next?.line ?? markdown.split("\n").length + 1 };
}

/** Whether `line` is in `range` (from {@link section}). */
export function within(range: { start: number; end: number } | undefined, line: number): boolean {
  return range !== undefined && line >= range.start && line < range.end;
}
