"""Product search latency by mode and catalog size, through `GET /api/search` of the release binary.

On the demo catalog (6,482 WANDS products) it measures keyword search, hybrid search whose query vectors are
cached (queries shoppers asked before: the WANDS queries after one pass), and hybrid search of queries never seen
(each needs its query embedded first). On a catalog expanded to --large products (each WANDS product copied with
colour and material variants, new ids) it measures keyword search; the vector side's cost at that size is
measured in-process by `cargo bench -p commerce --bench vectors` (embedding 200K products takes the embedder half
an hour here). Reports the server's own time (`took_ms`) and the HTTP round trip, p50 and p99, median over runs.

Only the standard library, so it runs wherever the product runs."""

import argparse
import csv
import json
import os
import random
import statistics
import tempfile
import time
import urllib.parse
import urllib.request

from foundation import launch_flywheel

VARIANTS = ["white", "black", "grey", "navy", "beige", "walnut", "oak", "brass", "velvet", "linen", "teak",
            "marble", "rattan", "leather", "chrome", "copper", "ivory", "sage", "rust", "charcoal", "pine",
            "maple", "cherry", "ash", "bamboo", "wicker", "glass", "stone", "jute", "wool", "silk"]


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def wait_for(base, want_search, timeout_s):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(base + "/readyz") as response:
                report = json.load(response)
                if response.status == 200 and (want_search is None or report.get("search") == want_search):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"flywheel did not become ready (search={want_search}) in {timeout_s} s")


FACETED = {"facets": "category,class", "filter": "category:Furniture"}


def measure(base, queries, mode, extra=None):
    server_ms, http_ms = [], []
    for query in queries:
        params = {"q": query, "limit": 10, "mode": mode, **(extra or {})}
        url = base + "/api/search?" + urllib.parse.urlencode(params)
        started = time.perf_counter()
        with urllib.request.urlopen(url) as response:
            page = json.load(response)
        http_ms.append((time.perf_counter() - started) * 1e3)
        if page["mode"] != mode:
            raise SystemExit(f"asked for {mode}, the server ran {page['mode']}")
        server_ms.append(page["took_ms"])
    return {"server_p50": percentile(server_ms, 0.5), "server_p99": percentile(server_ms, 0.99),
            "http_p50": percentile(http_ms, 0.5), "http_p99": percentile(http_ms, 0.99)}


def unseen_queries(catalog, count, rng):
    """Two or three words of a product's name, as shoppers type them: distinct, each asked once."""
    with open(catalog) as file:
        names = [row["product_name"] for row in csv.DictReader(file, delimiter="\t")]
    queries = set()
    while len(queries) < count:
        words = rng.choice(names).split()
        if len(words) >= 2:
            start_at = rng.randrange(0, max(1, len(words) - 2))
            queries.add(" ".join(words[start_at:start_at + rng.choice([2, 3])]))
    return sorted(queries)


def expand_catalog(catalog, size, path):
    with open(catalog) as source, open(path, "w", newline="") as target:
        reader = csv.DictReader(source, delimiter="\t")
        rows = list(reader)
        writer = csv.DictWriter(target, fieldnames=reader.fieldnames, delimiter="\t", extrasaction="ignore")
        writer.writeheader()
        written = 0
        for copy in range(size // len(rows) + 1):
            for row in rows:
                if written == size:
                    return
                variant = dict(row)
                if copy:
                    variant["product_id"] = f"{row['product_id']}-{copy}"
                    variant["product_name"] = f"{VARIANTS[(copy - 1) % len(VARIANTS)]} {row['product_name']}"
                writer.writerow(variant)
                written += 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--models-dir", required=True)
    parser.add_argument("--queries", required=True, help="a WANDS query.csv")
    parser.add_argument("--catalog", default="data/wands/product.csv")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--unseen", type=int, default=200, help="never-seen queries per run")
    parser.add_argument("--large", type=int, default=200_000, help="products in the expanded catalog (0: skip)")
    args = parser.parse_args()

    with open(args.queries) as file:
        wands = [row["query"] for row in csv.DictReader(file, delimiter="\t")]
    rng = random.Random(7)
    env = dict(os.environ)
    env.setdefault("FLYWHEEL_VECTOR_CACHE_DIR", os.path.expanduser("~/.cache/flywheel/vectors"))
    results = {}
    for run in range(args.runs):
        data_dir = tempfile.mkdtemp(prefix="flywheel-search-bench-")
        process, base = launch_flywheel(args.binary, args.models_dir, data_dir, env=env)
        try:
            wait_for(base, "hybrid", 900)
            repeated = wands * 10
            measure(base, wands, "keyword")
            measure(base, wands, "hybrid")  # asks each WANDS query once, so their vectors are cached
            results.setdefault("demo keyword", []).append(measure(base, repeated, "keyword"))
            results.setdefault("demo keyword, filtered + 2 facets", []).append(
                measure(base, repeated, "keyword", FACETED))
            results.setdefault("demo hybrid, query seen before", []).append(measure(base, repeated, "hybrid"))
            results.setdefault("demo hybrid, seen before, filtered + 2 facets", []).append(
                measure(base, repeated, "hybrid", FACETED))
            results.setdefault("demo hybrid, query never seen", []).append(
                measure(base, unseen_queries(args.catalog, args.unseen, rng), "hybrid"))
        finally:
            process.terminate()
            process.wait()
        if args.large:
            large = os.path.join(data_dir, "large.tsv")
            expand_catalog(args.catalog, args.large, large)
            config = os.path.join(data_dir, "flywheel.toml")
            with open(config, "w") as file:
                file.write("embedded_models = false\n")
            process, base = launch_flywheel(args.binary, args.models_dir, os.path.join(data_dir, "large"),
                                           ["--catalog", large, "--config", config], env)
            try:
                wait_for(base, None, 900)
                queries = wands * 10
                measure(base, wands, "keyword")
                results.setdefault(f"{args.large // 1000}K keyword", []).append(measure(base, queries, "keyword"))
                results.setdefault(f"{args.large // 1000}K keyword, filtered + 2 facets", []).append(
                    measure(base, queries, "keyword", FACETED))
            finally:
                process.terminate()
                process.wait()

    print(f"| scenario | server p50 ms | server p99 ms | HTTP p50 ms | HTTP p99 ms |  (median of {args.runs} runs)")
    print("|---|---|---|---|---|")
    for scenario, runs in results.items():
        cells = [statistics.median(run[key] for run in runs) for key in
                 ("server_p50", "server_p99", "http_p50", "http_p99")]
        print(f"| {scenario} | " + " | ".join(f"{cell:.3f}" for cell in cells) + " |")


if __name__ == "__main__":
    main()
