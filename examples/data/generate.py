#!/usr/bin/env python3
"""Deterministic sample dataset for the collective demo.

Three clinics ("contributors") each hold ~200 patient records: a few
health measurements and whether the patient developed type 2 diabetes
within five years (`outcome`). The outcome follows a logistic model of
the measurements plus noise, so a model trained on the pooled data learns
something real, and each clinic alone has fewer rows than the pool.

All values are synthetic (seeded PRNG): no real person is in this data.

Usage: python3 generate.py [OUT_DIR]   (default: the directory of this script)
"""

import csv
import math
import os
import random
import sys

COLUMNS = ["age", "bmi", "systolic_bp", "glucose", "smoker", "activity_hours", "region", "outcome"]

# (file name, seed, rows, age shift, region choices): clinics differ a little, as real ones do.
CLINICS = [
    ("clinic-north.csv", 101, 200, 0.0, ["north", "north", "east"]),
    ("clinic-south.csv", 202, 210, 4.0, ["south", "south", "west"]),
    ("clinic-city.csv", 303, 190, -3.0, ["city", "city", "city", "east"]),
]


def patient(rng, age_shift, regions):
    age = min(85, max(20, round(rng.gauss(50 + age_shift, 12))))
    bmi = round(min(48.0, max(17.0, rng.gauss(27.5, 4.5))), 1)
    systolic = round(min(190, max(95, rng.gauss(118 + 0.45 * (age - 50) + 0.6 * (bmi - 27), 12))))
    glucose = round(min(220, max(65, rng.gauss(98 + 0.9 * (bmi - 27) + 0.25 * (age - 50), 14))))
    smoker = 1 if rng.random() < 0.22 else 0
    activity = round(max(0.0, rng.gauss(3.5, 2.0)), 1)
    region = rng.choice(regions)
    # The true risk model the requester's training job should rediscover.
    z = (-1.2 + 0.045 * (age - 50) + 0.16 * (bmi - 27.5) + 0.055 * (glucose - 100)
         + 0.01 * (systolic - 120) + 0.5 * smoker - 0.22 * (activity - 3.5))
    p = 1.0 / (1.0 + math.exp(-z))
    outcome = 1 if rng.random() < p else 0
    row = {"age": age, "bmi": bmi, "systolic_bp": systolic, "glucose": glucose, "smoker": smoker,
           "activity_hours": activity, "region": region, "outcome": outcome}
    # About 2% of BMI readings were never taken.
    if rng.random() < 0.02:
        row["bmi"] = ""
    return row


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    os.makedirs(out, exist_ok=True)
    for name, seed, rows, age_shift, regions in CLINICS:
        rng = random.Random(seed)
        path = os.path.join(out, name)
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
            w.writeheader()
            for _ in range(rows):
                w.writerow(patient(rng, age_shift, regions))
        print(f"wrote {path} ({rows} rows)")


if __name__ == "__main__":
    main()
