"""Embedding benchmark: sentences/s of the embedded all-MiniLM-L6-v2 at batch 1 and 32 on WANDS product titles,
over HTTP (`/v1/embeddings`), and agreement with the independent float64 reference (tests/python/bert_reference.py)
on a fixed set of titles: the minimum and median cosine similarity. Each speed is the median over `--runs` runs.

Needs numpy (the test venv has it). Usage:
  python3 bench/embeddings.py --binary target/release/flywheel --models-dir .flywheel/models \\
      --products ../shared/data/wands/product.csv"""

import argparse
import csv
import json
import os
import signal
import statistics
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
import numpy as np  # noqa: E402
from bert_reference import BertReference  # noqa: E402
from foundation import start_flywheel  # noqa: E402

MODEL = "all-minilm-l6-v2"


def post(base, body):
    request = urllib.request.Request(base + "/v1/embeddings", json.dumps(body).encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def rate(base, titles, batch):
    """Sentences per second embedding `titles` in requests of `batch`."""
    post(base, {"model": MODEL, "input": titles[:batch]})
    began = time.perf_counter()
    for start_at in range(0, len(titles), batch):
        post(base, {"model": MODEL, "input": titles[start_at:start_at + batch]})
    return len(titles) / (time.perf_counter() - began)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--models-dir", required=True)
    parser.add_argument("--products", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--agreement-set", type=int, default=300, help="titles checked against the reference")
    args = parser.parse_args()
    with open(args.products, newline="") as file:
        titles = [row["product_name"] for row in csv.DictReader(file, delimiter="\t")]
    process, base = start_flywheel(os.path.abspath(args.binary), args.models_dir, args.threads)
    try:
        speeds = {1: [], 32: []}
        for _ in range(args.runs):
            speeds[1].append(rate(base, titles[:256], 1))
            speeds[32].append(rate(base, titles[:2048], 32))
        fixed = titles[: args.agreement_set]
        ours = [item["embedding"] for start_at in range(0, len(fixed), 32)
                for item in post(base, {"model": MODEL, "input": fixed[start_at:start_at + 32]})["data"]]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    reference = BertReference(os.path.join(args.models_dir, "all-MiniLM-L6-v2"))
    cosines = []
    for title, embedding in zip(fixed, ours):
        want, got = reference.embed(title), np.asarray(embedding, dtype=np.float64)
        cosines.append(float(want @ got / (np.linalg.norm(want) * np.linalg.norm(got))))
    print("| figure | value |")
    print("|---|---|")
    print(f"| sentences/s, batch 1 (median of {args.runs}) | {statistics.median(speeds[1]):.0f} |")
    print(f"| sentences/s, batch 32 (median of {args.runs}) | {statistics.median(speeds[32]):.0f} |")
    print(f"| cosine vs float64 reference, {len(cosines)} titles: min | {min(cosines):.6f} |")
    print(f"| cosine vs float64 reference: median | {statistics.median(cosines):.6f} |")


if __name__ == "__main__":
    main()
