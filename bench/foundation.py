"""Foundation benchmark: starts the release binary several times and measures it through its HTTP API.

Only the standard library, so it runs wherever the product runs."""

import argparse
import csv
import json
import os
import re
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request

TITLES = [
    "tufted velvet sofa with gold legs", "solid wood farmhouse dining table", "king size upholstered platform bed",
    "modern glass coffee table", "outdoor teak lounge chair", "ceramic table lamp with linen shade",
    "round jute area rug", "wall mounted floating shelf", "leather swivel office chair", "kids bunk bed with ladder",
    "industrial metal bar stool", "memory foam mattress topper", "bathroom vanity with marble top",
    "wrought iron door knob", "seashell serving platter", "cat hut covered dog bed",
]


def post(base, path, body):
    request = urllib.request.Request(base + path, json.dumps(body).encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def launch_flywheel(binary, models_dir, data_dir, extra=(), env=None, threads=2):
    """Starts `flywheel up` on `data_dir` and an ephemeral port, in its own session, and returns the process and
    its base URL once it listens (models and catalog may still be loading)."""
    process = subprocess.Popen(
        [binary, "up", "--listen", "127.0.0.1:0", "--data-dir", data_dir, "--models-dir", models_dir,
         "--threads", str(threads), *extra],
        stderr=subprocess.PIPE, text=True, start_new_session=True, env=env,
    )
    base = None
    for line in process.stderr:
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            base = match.group(1)
            break
    if base is None:
        raise SystemExit("flywheel exited before listening")
    threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()
    return process, base


def start_flywheel(binary, models_dir, threads=2):
    """Starts `flywheel up` on a fresh data directory and returns the process and its base URL once `/readyz`
    says ready."""
    process, base = launch_flywheel(binary, models_dir, tempfile.mkdtemp(prefix="flywheel-bench-"), threads=threads)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(base + "/readyz") as response:
                if response.status == 200:
                    return process, base
        except OSError:
            pass
        time.sleep(0.005)
    raise SystemExit("flywheel did not become ready")


def one_run(binary, models_dir, queries):
    started = time.perf_counter()
    process, base = start_flywheel(binary, models_dir)
    ready_s = time.perf_counter() - started
    time.sleep(1.0)
    idle_rss = rss_mib(process.pid)

    # Decode speed: the server's own token count over the wall time after the first token, streamed.
    prompt = [{"role": "user", "content": "Write a detailed description of a cozy living room."}]
    decode_rates = []
    for seed in range(3):
        body = {"model": "smollm2-135m-instruct", "messages": prompt, "max_tokens": 128, "temperature": 0.7,
                "seed": seed, "stream": True, "stream_options": {"include_usage": True}}
        request = urllib.request.Request(base + "/v1/chat/completions", json.dumps(body).encode(),
                                         {"content-type": "application/json"})
        first = None
        usage = None
        with urllib.request.urlopen(request) as response:
            for raw in response:
                line = raw.decode().strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    usage = chunk["usage"]
                if first is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    first = time.perf_counter()
        end = time.perf_counter()
        decode_rates.append((usage["completion_tokens"] - 1) / (end - first))

    # Embeddings at batch 32.
    batch = (TITLES * 2)[:32]
    post(base, "/v1/embeddings", {"model": "all-minilm-l6-v2", "input": batch})
    rounds = 10
    t0 = time.perf_counter()
    for _ in range(rounds):
        post(base, "/v1/embeddings", {"model": "all-minilm-l6-v2", "input": batch})
    embeddings_per_s = rounds * len(batch) / (time.perf_counter() - t0)

    # Search latency over HTTP, every WANDS public query, several passes.
    latencies = []
    for _ in range(10):
        for query in queries:
            url = base + "/api/search?" + urllib.parse.urlencode({"q": query, "limit": 10})
            t = time.perf_counter()
            with urllib.request.urlopen(url) as response:
                response.read()
            latencies.append((time.perf_counter() - t) * 1000)
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[int(len(latencies) * 0.99) - 1]

    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    return {"ready_s": ready_s, "idle_rss_mib": idle_rss, "decode_tok_s": statistics.median(decode_rates),
            "embeddings_per_s": embeddings_per_s, "search_p50_ms": p50, "search_p99_ms": p99}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--models-dir", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with open(args.queries, newline="") as f:
        queries = [row["query"] for row in csv.DictReader(f, delimiter="\t")]
    results = [one_run(os.path.abspath(args.binary), args.models_dir, queries) for _ in range(args.runs)]
    labels = [
        ("ready_s", "time from `flywheel up` to ready", "s"),
        ("idle_rss_mib", "RSS at idle, models and catalog loaded", "MiB"),
        ("decode_tok_s", "chat decode, SmolLM2-135M Q4_1, 2 threads, 1 stream", "tokens/s"),
        ("embeddings_per_s", "embeddings, all-MiniLM-L6-v2, batch 32, over HTTP", "inputs/s"),
        ("search_p50_ms", "search p50 over HTTP (31 WANDS queries x 10)", "ms"),
        ("search_p99_ms", "search p99 over HTTP", "ms"),
    ]
    print(f"| figure | median of {args.runs} runs | unit | all runs |")
    print("|---|---|---|---|")
    for key, label, unit in labels:
        values = [r[key] for r in results]
        print(f"| {label} | {statistics.median(values):.3g} | {unit} | {', '.join(f'{v:.3g}' for v in values)} |")


if __name__ == "__main__":
    main()
