/** Plain-text tables for the benchmark's report: aligned columns, cells may span lines. */

export type Align = "left" | "right";

export interface Column {
  header: string;
  align?: Align;
  /** Wrap longer cells at spaces to this width; the last column is never padded. */
  wrap?: number;
}

function wrapText(text: string, width: number | undefined): string[] {
  if (width === undefined || text.length <= width) return [text];
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  lines.push(line);
  return lines;
}

/** Render rows under their headers; a `null` row draws a rule (e.g. before a totals row). */
export function formatTable(columns: Column[], rows: (string[] | null)[]): string {
  const cells = rows.map((row) =>
    row === null ? null : row.map((cell, i) => wrapText(cell, columns[i]?.wrap)),
  );
  const widths = columns.map((c, i) =>
    Math.max(
      c.header.length,
      ...cells.flatMap((row) => (row === null ? [] : (row[i] ?? []).map((l) => l.length))),
    ),
  );
  const line = (parts: string[]): string =>
    parts
      .map((p, i) => {
        if (i === parts.length - 1 && columns[i]?.align !== "right") return p;
        const w = widths[i] ?? 0;
        return columns[i]?.align === "right" ? p.padStart(w) : p.padEnd(w);
      })
      .join("  ")
      .trimEnd();
  const rule = widths.map((w) => "-".repeat(w)).join("  ");
  const out = [line(columns.map((c) => c.header)), rule];
  for (const row of cells) {
    if (row === null) {
      out.push(rule);
      continue;
    }
    const height = Math.max(1, ...row.map((c) => c.length));
    for (let k = 0; k < height; k++) out.push(line(columns.map((_, i) => row[i]?.[k] ?? "")));
  }
  return out.join("\n");
}
