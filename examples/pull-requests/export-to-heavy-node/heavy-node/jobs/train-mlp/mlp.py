#!/usr/bin/env python3
"""A small neural network (one hidden layer), trained on the requester's
heavy-compute node, on the copy of the dataset the collective exported to it.

This job lives in the heavy node's own tree (heavy-node/ here), approved
on-chain by its own proposal: the heavy node, a second `collective node`
with its own keys, registered in NodeRegistry, deploys only that approved
tree and runs this job on the imported copy in the same sandbox: tree
read-only at /job, plaintext read-only at /data, only /out writable.

Outputs, encrypted by the heavy node to the approved recipients:
  /out/model.json    layer sizes, standardization and weights
  /out/metrics.json  row counts and held-out accuracy / log loss

Python standard library only; deterministic (seeded).
"""

import argparse
import csv
import json
import math
import os
import random
import sys

LABEL = "outcome"
HIDDEN = 12
TEST_EVERY = 5


def load_rows(data_dir):
    rows, files = [], 0
    for root, _dirs, names in sorted(os.walk(data_dir)):
        for name in sorted(names):
            try:
                with open(os.path.join(root, name), newline="") as f:
                    reader = csv.DictReader(f)
                    if reader.fieldnames and LABEL in reader.fieldnames:
                        rows.extend(reader)
                        files += 1
            except (UnicodeDecodeError, csv.Error):
                pass
    return rows, files


def numeric_features(rows):
    cols = [c for c in (rows[0].keys() if rows else []) if c != LABEL]
    def numeric(c):
        for r in rows:
            v = r.get(c) or ""
            if v:
                try:
                    float(v)
                except ValueError:
                    return False
        return True
    return [c for c in cols if numeric(c)]


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


class Net:
    def __init__(self, d, h, rng):
        s = 1.0 / math.sqrt(d)
        self.w1 = [[rng.gauss(0, s) for _ in range(d)] for _ in range(h)]
        self.b1 = [0.0] * h
        self.w2 = [rng.gauss(0, 1.0 / math.sqrt(h)) for _ in range(h)]
        self.b2 = 0.0

    def forward(self, x):
        hidden = [math.tanh(sum(w * xi for w, xi in zip(row, x)) + b) for row, b in zip(self.w1, self.b1)]
        return hidden, sigmoid(sum(w * a for w, a in zip(self.w2, hidden)) + self.b2)

    def step(self, x, y, lr):
        hidden, p = self.forward(x)
        err = p - y
        for j, a in enumerate(hidden):
            g = err * self.w2[j] * (1 - a * a)
            self.w2[j] -= lr * err * a
            row = self.w1[j]
            for i, xi in enumerate(x):
                row[i] -= lr * g * xi
            self.b1[j] -= lr * g
        self.b2 -= lr * err


def evaluate(net, xs, ys):
    ps = [net.forward(x)[1] for x in xs]
    eps = 1e-12
    return {
        "accuracy": round(sum((p >= 0.5) == (y == 1) for p, y in zip(ps, ys)) / len(ys), 4),
        "log_loss": round(-sum(y * math.log(p + eps) + (1 - y) * math.log(1 - p + eps) for p, y in zip(ps, ys)) / len(ys), 4),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/data")
    ap.add_argument("--out", default="/out")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--learning-rate", type=float, default=0.02)
    ap.add_argument("--min-rows", type=int, default=50)
    args = ap.parse_args()

    rows, files = load_rows(args.data)
    features = numeric_features(rows)
    data = []
    for r in rows:
        if (r.get(LABEL) or "").strip() in ("0", "1"):
            data.append(([float(r[c]) if r.get(c) else None for c in features], int(r[LABEL])))
    if len(data) < args.min_rows or not features:
        print(f"not enough data: {len(data)} labelled rows (need {args.min_rows})", file=sys.stderr)
        return 3
    train = [d for i, d in enumerate(data) if i % TEST_EVERY != 0]
    test = [d for i, d in enumerate(data) if i % TEST_EVERY == 0]
    means, stds = [], []
    for j in range(len(features)):
        vals = [x[j] for x, _ in train if x[j] is not None]
        m = sum(vals) / len(vals)
        means.append(m)
        stds.append(math.sqrt(sum((v - m) ** 2 for v in vals) / len(vals)) or 1.0)
    norm = lambda x: [0.0 if v is None else (v - m) / s for v, m, s in zip(x, means, stds)]
    tx, ty = [norm(x) for x, _ in train], [y for _, y in train]
    vx, vy = [norm(x) for x, _ in test], [y for _, y in test]

    rng = random.Random(20261130)
    net = Net(len(features), HIDDEN, rng)
    order = list(range(len(tx)))
    for _ in range(args.epochs):
        rng.shuffle(order)
        for i in order:
            net.step(tx[i], ty[i], args.learning_rate)

    os.makedirs(args.out, exist_ok=True)
    model = {"kind": "mlp", "hidden": HIDDEN, "activation": "tanh", "label": LABEL, "features": features,
             "standardization": {"mean": means, "std": stds},
             "w1": net.w1, "b1": net.b1, "w2": net.w2, "b2": net.b2, "epochs": args.epochs}
    metrics = {"files": files, "rows_train": len(tx), "rows_test": len(vx),
               "train": evaluate(net, tx, ty), "test": evaluate(net, vx, vy)}
    with open(os.path.join(args.out, "model.json"), "w") as f:
        json.dump(model, f, indent=2, sort_keys=True)
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
    print(f"trained an MLP on {len(tx)} rows; test accuracy {metrics['test']['accuracy']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
