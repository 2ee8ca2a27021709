"""Shopping assistant latency through `POST /api/assistant` (server-sent events) of the release binary with the
embedded models: time to the first event (the products found, sent before the model is asked), to the first
text, and to the end of the answer, p50 and p90 over a fixed set of shopper requests, median over runs.

Only the standard library. Usage:
  python3 bench/assistant.py --binary target/release/flywheel --models-dir ~/.cache/flywheel/models --runs 3"""

import argparse
import http.client
import json
import os
import statistics
import tempfile
import time
import urllib.parse

from foundation import launch_flywheel

REQUESTS = [
    "a rug for a small dining room under $200",
    "I need a king size poster bed",
    "a lamp for my desk",
    "help me decide between a velvet sofa and a leather sofa",
    "outdoor dining set for six",
    "a bookcase for a narrow hallway",
    "bar stools for a kitchen island",
    "a crib for a small nursery",
    "wall clock for the living room",
    "a comfortable office chair",
]


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def wait_ready(base, timeout_s=300):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            connection = http.client.HTTPConnection(urllib.parse.urlparse(base).netloc, timeout=5)
            connection.request("GET", "/readyz")
            response = connection.getresponse()
            ready = response.status == 200 and json.loads(response.read()).get("search") == "hybrid"
            connection.close()
            if ready:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("flywheel did not become ready with hybrid search")


def one_answer(base, text):
    """Seconds to the first event, the first text event and the last event."""
    connection = http.client.HTTPConnection(urllib.parse.urlparse(base).netloc, timeout=120)
    body = json.dumps({"messages": [{"role": "user", "content": text}], "session": "bench"})
    started = time.perf_counter()
    connection.request("POST", "/api/assistant", body, {"content-type": "application/json"})
    response = connection.getresponse()
    if response.status != 200:
        raise SystemExit(f"{text!r}: HTTP {response.status} {response.read()[:200]!r}")
    first = first_text = None
    while True:
        line = response.readline()
        if not line:
            break
        if line.startswith(b"event: "):
            now = time.perf_counter() - started
            first = first if first is not None else now
            if line.strip() == b"event: text" and first_text is None:
                first_text = now
    total = time.perf_counter() - started
    connection.close()
    return first, first_text if first_text is not None else total, total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--models-dir", required=True)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    env = dict(os.environ)
    env.setdefault("FLYWHEEL_VECTOR_CACHE_DIR", os.path.expanduser("~/.cache/flywheel/vectors"))
    runs = []
    for _ in range(args.runs):
        process, base = launch_flywheel(args.binary, args.models_dir, tempfile.mkdtemp(prefix="flywheel-assistant-"),
                                        env=env)
        try:
            wait_ready(base)
            one_answer(base, "warm up")
            timings = [one_answer(base, text) for text in REQUESTS]
        finally:
            process.terminate()
            process.wait()
        runs.append({name: (percentile([t[index] for t in timings], 0.5), percentile([t[index] for t in timings], 0.9))
                     for index, name in enumerate(["first event", "first text", "whole answer"])})
    print(f"| measure | p50 ms | p90 ms |  ({len(REQUESTS)} requests, median of {args.runs} runs)")
    print("|---|---|---|")
    for name in ["first event", "first text", "whole answer"]:
        p50 = statistics.median(run[name][0] for run in runs) * 1e3
        p90 = statistics.median(run[name][1] for run in runs) * 1e3
        print(f"| {name} | {p50:.1f} | {p90:.1f} |")


if __name__ == "__main__":
    main()
