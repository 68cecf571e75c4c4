#!/usr/bin/env python3
"""Logistic regression on the collective's pooled dataset, Python standard library only.

Runs inside the node's sandbox: the approved tree is read-only at /job, the
decrypted contributions are read-only at /data (one CSV file per
contribution, names are content hashes), and /out is the only writable
place. Everything written to /out is encrypted to the recipients the DAO
approved, so this job writes only what the proposal promised:

  /out/model.json    feature names, standardization, weights and bias
  /out/metrics.json  row counts and held-out accuracy / log loss / AUC

It never writes a data row, and it prints only counts to stderr.
"""

import argparse
import csv
import json
import math
import os
import sys

LABEL = "outcome"
EPOCHS = 400
LEARNING_RATE = 0.1
L2 = 0.001
TEST_EVERY = 5  # every 5th row (by position) is held out for evaluation


def load_rows(data_dir):
    """All rows of all CSV files under data_dir (files that are not CSV with a header are skipped)."""
    rows, files, skipped = [], 0, 0
    for root, _dirs, names in sorted(os.walk(data_dir)):
        for name in sorted(names):
            path = os.path.join(root, name)
            try:
                with open(path, newline="") as f:
                    reader = csv.DictReader(f)
                    if not reader.fieldnames or LABEL not in reader.fieldnames:
                        skipped += 1
                        continue
                    rows.extend(reader)
                    files += 1
            except (UnicodeDecodeError, csv.Error):
                skipped += 1
    return rows, files, skipped


def numeric_features(rows):
    """Columns (other than the label) whose every non-empty value is a number."""
    if not rows:
        return []
    cols = [c for c in rows[0].keys() if c != LABEL]
    out = []
    for c in cols:
        ok = True
        for r in rows:
            v = r.get(c, "")
            if v == "" or v is None:
                continue
            try:
                float(v)
            except ValueError:
                ok = False
                break
        if ok:
            out.append(c)
    return out


def to_matrix(rows, features):
    """Feature vectors (missing values become None) and labels; rows without a 0/1 label are dropped."""
    xs, ys = [], []
    for r in rows:
        label = r.get(LABEL, "").strip()
        if label not in ("0", "1"):
            continue
        xs.append([float(r[c]) if r.get(c, "") not in ("", None) else None for c in features])
        ys.append(int(label))
    return xs, ys


def standardize(train, features):
    means, stds = [], []
    for j in range(len(features)):
        vals = [x[j] for x in train if x[j] is not None]
        m = sum(vals) / len(vals) if vals else 0.0
        var = sum((v - m) ** 2 for v in vals) / len(vals) if vals else 0.0
        means.append(m)
        stds.append(math.sqrt(var) or 1.0)
    return means, stds


def apply(x, means, stds):
    # Missing values are imputed with the training mean (0 after standardization).
    return [0.0 if v is None else (v - m) / s for v, m, s in zip(x, means, stds)]


def sigmoid(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def train(xs, ys):
    n, d = len(xs), len(xs[0])
    w, b = [0.0] * d, 0.0
    for _ in range(EPOCHS):
        gw, gb = [0.0] * d, 0.0
        for x, y in zip(xs, ys):
            err = sigmoid(sum(wi * xi for wi, xi in zip(w, x)) + b) - y
            for j in range(d):
                gw[j] += err * x[j]
            gb += err
        w = [wi - LEARNING_RATE * (g / n + L2 * wi) for wi, g in zip(w, gw)]
        b -= LEARNING_RATE * gb / n
    return w, b


def auc(scores, ys):
    """Probability that a random positive scores above a random negative (ties count half)."""
    pos = [s for s, y in zip(scores, ys) if y == 1]
    neg = [s for s, y in zip(scores, ys) if y == 0]
    if not pos or not neg:
        return None
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def evaluate(xs, ys, w, b):
    scores = [sigmoid(sum(wi * xi for wi, xi in zip(w, x)) + b) for x in xs]
    eps = 1e-12
    acc = sum((s >= 0.5) == (y == 1) for s, y in zip(scores, ys)) / len(ys)
    loss = -sum(y * math.log(s + eps) + (1 - y) * math.log(1 - s + eps) for s, y in zip(scores, ys)) / len(ys)
    base = max(sum(ys), len(ys) - sum(ys)) / len(ys)
    return {"accuracy": round(acc, 4), "log_loss": round(loss, 4), "auc": None if auc(scores, ys) is None else round(auc(scores, ys), 4),
            "majority_class_accuracy": round(base, 4)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/data")
    ap.add_argument("--out", default="/out")
    ap.add_argument("--min-rows", type=int, default=50, help="refuse to train on fewer rows (tiny data leaks more)")
    args = ap.parse_args()

    rows, files, skipped = load_rows(args.data)
    features = numeric_features(rows)
    xs, ys = to_matrix(rows, features)
    if len(xs) < args.min_rows or not features:
        print(f"not enough data: {len(xs)} labelled rows in {files} files (need {args.min_rows})", file=sys.stderr)
        return 3
    train_x = [x for i, x in enumerate(xs) if i % TEST_EVERY != 0]
    train_y = [y for i, y in enumerate(ys) if i % TEST_EVERY != 0]
    test_x = [x for i, x in enumerate(xs) if i % TEST_EVERY == 0]
    test_y = [y for i, y in enumerate(ys) if i % TEST_EVERY == 0]

    means, stds = standardize(train_x, features)
    tx = [apply(x, means, stds) for x in train_x]
    w, b = train(tx, train_y)
    metrics = {
        "files": files,
        "skipped_files": skipped,
        "rows_train": len(tx),
        "rows_test": len(test_x),
        "train": evaluate(tx, train_y, w, b),
        "test": evaluate([apply(x, means, stds) for x in test_x], test_y, w, b),
    }
    model = {
        "kind": "logistic-regression",
        "label": LABEL,
        "features": features,
        "standardization": {"mean": [round(m, 6) for m in means], "std": [round(s, 6) for s in stds]},
        "weights": dict(zip(features, [round(x, 6) for x in w])),
        "bias": round(b, 6),
        "hyperparameters": {"epochs": EPOCHS, "learning_rate": LEARNING_RATE, "l2": L2},
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "model.json"), "w") as f:
        json.dump(model, f, indent=2, sort_keys=True)
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
    print(f"trained on {len(tx)} rows from {files} files; test accuracy {metrics['test']['accuracy']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
