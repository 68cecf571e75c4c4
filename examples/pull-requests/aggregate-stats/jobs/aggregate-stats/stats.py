#!/usr/bin/env python3
"""Per-column statistics of the collective's dataset that never output a row.

Runs in the node's sandbox (tree read-only at /job, decrypted contributions
read-only at /data, only /out writable) and writes one file,
/out/stats.json, encrypted by the node to the approved recipients.

What it promises, and what a reviewer can check in this file:
- no row, and no single value copied from a row: numbers are counts, means,
  standard deviations and counts per fixed-width bin whose edges are rounded
  to a coarse grid;
- small-group suppression: any count below k (default 10) is reported as
  suppressed, never as its number, and a column with fewer than k values is
  suppressed whole; a category seen fewer than k times is folded into
  "(other)";
- no minimum, maximum or median (each is one person's value).
"""

import argparse
import csv
import json
import math
import os
import sys

BINS = 8


def load(data_dir):
    """Rows of every CSV file with a header under data_dir; other files are skipped."""
    rows, columns, files, skipped = [], [], 0, 0
    for root, _dirs, names in sorted(os.walk(data_dir)):
        for name in sorted(names):
            try:
                with open(os.path.join(root, name), newline="") as f:
                    reader = csv.DictReader(f)
                    if not reader.fieldnames:
                        skipped += 1
                        continue
                    for c in reader.fieldnames:
                        if c not in columns:
                            columns.append(c)
                    rows.extend(reader)
                    files += 1
            except (UnicodeDecodeError, csv.Error):
                skipped += 1
    return rows, columns, files, skipped


def as_number(v):
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def count_or_suppressed(n, k):
    return n if n >= k else "suppressed"


def nice_step(span):
    """A bin width of 1, 2 or 5 times a power of ten, giving about BINS bins over span."""
    if span <= 0:
        return 1.0
    raw = span / BINS
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def numeric_stats(values, k):
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    distinct = set(values)
    if distinct <= {0.0, 1.0}:
        ones = sum(1 for v in values if v == 1.0)
        return {"type": "binary", "count": n, "ones": count_or_suppressed(ones, k),
                "zeros": count_or_suppressed(n - ones, k),
                "share_of_ones": round(ones / n, 3) if min(ones, n - ones) >= k else "suppressed"}
    # Bin edges on a coarse grid derived from the spread, so no edge is a data value.
    step = nice_step(4 * std if std > 0 else 1.0)
    lo = math.floor((mean - 2 * std) / step) * step
    edges = [round(lo + i * step, 10) for i in range(BINS + 1)]
    counts = [0] * (BINS + 2)  # below, BINS bins, above
    for v in values:
        if v < edges[0]:
            counts[0] += 1
        elif v >= edges[-1]:
            counts[-1] += 1
        else:
            counts[1 + min(BINS - 1, int((v - lo) // step))] += 1
    histogram = [{"from": None, "to": edges[0], "count": count_or_suppressed(counts[0], k)}]
    histogram += [{"from": edges[i], "to": edges[i + 1], "count": count_or_suppressed(counts[i + 1], k)} for i in range(BINS)]
    histogram.append({"from": edges[-1], "to": None, "count": count_or_suppressed(counts[-1], k)})
    return {"type": "numeric", "count": n, "mean": round(mean, 3), "std": round(std, 3), "histogram": histogram}


def categorical_stats(values, k):
    counts = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    shown = {c: n for c, n in sorted(counts.items()) if n >= k}
    other = sum(n for c, n in counts.items() if n < k)
    if other:
        shown["(other)"] = count_or_suppressed(other, k)
    return {"type": "categorical", "count": len(values), "categories": shown}


def column_stats(rows, column, k):
    present = [r.get(column) for r in rows if r.get(column) not in (None, "")]
    out = {"missing": count_or_suppressed(len(rows) - len(present), k) if len(rows) - len(present) else 0}
    if len(present) < k:
        out.update({"suppressed": True, "reason": f"fewer than k={k} values"})
        return out
    numbers = [as_number(v) for v in present]
    if all(x is not None for x in numbers):
        out.update(numeric_stats(numbers, k))
    else:
        out.update(categorical_stats(present, k))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/data")
    ap.add_argument("--out", default="/out")
    ap.add_argument("--k", type=int, default=10, help="smallest count ever reported")
    args = ap.parse_args()
    if args.k < 2:
        print("--k must be at least 2", file=sys.stderr)
        return 2
    rows, columns, files, skipped = load(args.data)
    stats = {
        "k": args.k,
        "files": files,
        "skipped_files": skipped,
        "rows": count_or_suppressed(len(rows), args.k),
        "columns": {c: column_stats(rows, c, args.k) for c in columns} if len(rows) >= args.k else "suppressed",
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "stats.json"), "w") as f:
        json.dump(stats, f, indent=2, sort_keys=True)
    print(f"statistics of {len(columns)} columns written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
