"""Embedded engine benchmark: flywheel and llama.cpp's own llama-server side by side, in one run, on one GGUF.

Both servers get the same model file, the same threads and the same KV cache size, with continuous batching on,
and are driven through HTTP by the same client (this script): streamed `/v1/chat/completions` with greedy
decoding. Each server is started, measured and stopped in turn, so they never compete for the cores.

Per server it reports:
- time to first token for a ~200-token prompt (one client, each prompt different so no cache helps);
- single-stream decode tokens/s (after the first token);
- with 1, 4 and 16 concurrent streams: aggregate generated tokens/s and p99 inter-token latency, once with
  ~200-token prompts (prompt reading dominates) and once with short prompts (generation dominates);
- peak RSS of the server process (VmHWM).

Each figure is the median over `--runs` runs. Only the standard library. Every process this script starts runs in
its own session and is killed, with its children, on exit."""

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

# About 200 tokens of SmolLM2's tokenizer once the chat template wraps it.
PARAGRAPH = (
    "Our shop sells furniture for small homes: sofas that fold into beds, dining tables that extend from four "
    "to eight seats, stackable chairs, rugs in washable cotton, and lamps with warm dimmable bulbs. Customers "
    "often ask how to furnish a studio flat without making it feel crowded. The usual advice is to choose "
    "pieces that serve two purposes, to keep the floor visible, to prefer light colours and legs that lift a "
    "sofa off the ground, and to use mirrors to widen a room. A rug marks out a living area; a round table "
    "saves space in a corner; shelves up to the ceiling hold books without taking floor. Write a detailed "
    "guide for a customer who has just moved into a studio of twenty-five square metres and wants a sofa, a "
    "table for two, a reading lamp and storage, explaining each choice step by step."
)
# A request that is mostly generation: a dozen prompt tokens.
SHORT_PROMPT = "Write a long essay about the history of furniture."
CONCURRENCY = [1, 4, 16]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(port, path, timeout_s=180):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server on port {port} did not become ready at {path}")


def stream_once(port, model, prompt, max_tokens):
    """One streamed greedy completion: (ttft_s, chunk arrival times, completion_tokens, prompt_tokens)."""
    body = json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise SystemExit(f"port {port}: HTTP {response.status}: {response.read()[:300]!r}")
    arrivals = []
    usage = None
    for raw in response:
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            break
        event = json.loads(data)
        if event.get("usage"):
            usage = event["usage"]
        for choice in event.get("choices", []):
            if choice.get("delta", {}).get("content"):
                arrivals.append(time.perf_counter())
    conn.close()
    if not arrivals or usage is None:
        raise SystemExit(f"port {port}: a stream without text or usage")
    return arrivals[0] - started, arrivals, usage["completion_tokens"], usage["prompt_tokens"]


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(port, model, runs, decode_tokens, tag):
    """The figures of one server, medians over `runs`."""
    ttfts, decodes, prompt_sizes = [], [], []
    for run in range(runs):
        ttft, arrivals, completion, prompt_tokens = stream_once(
            port, model, f"Request {tag}-{run}-{time.time_ns()}. {PARAGRAPH}", 1
        )
        ttfts.append(ttft)
        prompt_sizes.append(prompt_tokens)
        _, arrivals, completion, _ = stream_once(port, model, f"Essay {tag}-{run}-{time.time_ns()}. {PARAGRAPH}", decode_tokens)
        if completion > 1 and arrivals[-1] > arrivals[0]:
            decodes.append((completion - 1) / (arrivals[-1] - arrivals[0]))
    figures = {
        "prompt_tokens": statistics.median(prompt_sizes),
        "ttft_ms": statistics.median(ttfts) * 1000,
        "decode_tps": statistics.median(decodes),
    }
    for prompt_kind, prompt in [("", PARAGRAPH), ("short_", SHORT_PROMPT)]:
        for streams in CONCURRENCY:
            aggregates, p99s = [], []
            for run in range(runs):
                results = [None] * streams

                def client(index, run=run, prompt=prompt):
                    results[index] = stream_once(
                        port, model, f"Client {tag}-{run}-{index}-{time.time_ns()}. {prompt}", decode_tokens
                    )

                began = time.perf_counter()
                threads = [threading.Thread(target=client, args=(i,)) for i in range(streams)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                elapsed = time.perf_counter() - began
                tokens = sum(result[2] for result in results)
                gaps = [b - a for result in results for a, b in zip(result[1], result[1][1:])]
                aggregates.append(tokens / elapsed)
                p99s.append(percentile(gaps, 0.99) * 1000 if gaps else 0.0)
            figures[f"{prompt_kind}aggregate_tps_{streams}"] = statistics.median(aggregates)
            figures[f"{prompt_kind}p99_itl_ms_{streams}"] = statistics.median(p99s)
    return figures


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def start(argv, env=None):
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(argv, start_new_session=True, stdout=log, stderr=subprocess.STDOUT, env=env)
    return process, log


def stop(process):
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_server(name, argv, port, ready_path, model, args, env=None):
    process, log = start(argv, env)
    try:
        wait_ready(port, ready_path)
        # Warm-up: page the weights in and let both servers build what they build on first use.
        stream_once(port, model, f"warm-up {PARAGRAPH}", 8)
        figures = measure(port, model, args.runs, args.decode_tokens, name)
        figures["peak_rss_mib"] = peak_rss_mib(process.pid)
        return figures
    except BaseException:
        log.seek(0)
        sys.stderr.write(log.read()[-4000:].decode(errors="replace"))
        raise
    finally:
        stop(process)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flywheel", required=True, help="the flywheel binary")
    parser.add_argument("--llama-server", required=True, help="llama.cpp's llama-server binary")
    parser.add_argument("--models-dir", required=True)
    parser.add_argument("--gguf", default="SmolLM2-135M-Instruct.Q4_1.gguf")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kv-cache-tokens", type=int, default=8192)
    parser.add_argument("--sequences", type=int, default=16)
    parser.add_argument("--decode-tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=["flywheel", "llama-server"])
    args = parser.parse_args()
    gguf = os.path.join(args.models_dir, args.gguf)

    results = {}
    if args.only != "llama-server":
        port = free_port()
        data_dir = tempfile.mkdtemp(prefix="flywheel-bench-")
        env = dict(os.environ, FLYWHEEL_LOG="warn")
        argv = [
            args.flywheel, "up", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir,
            "--models-dir", args.models_dir, "--threads", str(args.threads),
            "--max-sequences", str(args.sequences), "--kv-cache-tokens", str(args.kv_cache_tokens),
        ]
        results["flywheel"] = run_server("flywheel", argv, port, "/readyz", "smollm2-135m-instruct", args, env)
    if args.only != "flywheel":
        port = free_port()
        argv = [
            args.llama_server, "-m", gguf, "--host", "127.0.0.1", "--port", str(port),
            "-t", str(args.threads), "-tb", str(args.threads), "-c", str(args.kv_cache_tokens),
            "-np", str(args.sequences), "--kv-unified", "--cont-batching", "--no-webui",
        ]
        results["llama-server"] = run_server("llama-server", argv, port, "/health", "smollm2", args)

    rows = [
        ("time to first token, ~200-token prompt (ms)", "ttft_ms", False),
        ("decode, 1 stream (tokens/s)", "decode_tps", True),
    ]
    for prompt_kind, label in [("", "~200-token prompts"), ("short_", "short prompts")]:
        for streams in CONCURRENCY:
            rows.append((f"aggregate, {streams} streams, {label} (tokens/s)", f"{prompt_kind}aggregate_tps_{streams}", True))
            rows.append((f"p99 inter-token latency, {streams} streams, {label} (ms)", f"{prompt_kind}p99_itl_ms_{streams}", False))
    rows.append(("peak RSS (MiB)", "peak_rss_mib", False))
    print(json.dumps(results, indent=2), file=sys.stderr)
    names = list(results)
    print("| figure | " + " | ".join(names) + (" | flywheel / llama-server |" if len(names) == 2 else " |"))
    print("|---" * (len(names) + 1 + (len(names) == 2)) + "|")
    for label, key, higher_is_better in rows:
        cells = [f"{results[name][key]:.1f}" for name in names]
        line = f"| {label} | " + " | ".join(cells)
        if len(names) == 2:
            ours, theirs = results["flywheel"][key], results["llama-server"][key]
            # As a "how many times better" figure: ≥ 1.0 means flywheel is at least as good.
            ratio = (ours / theirs if higher_is_better else theirs / ours) if ours and theirs else float("nan")
            line += f" | {ratio:.2f}×"
        print(line + " |")
    if "flywheel" in results:
        fly = results["flywheel"]
        for prompt_kind, label in [("", "~200-token prompts"), ("short_", "short prompts")]:
            ratio = fly[f"{prompt_kind}aggregate_tps_16"] / fly[f"{prompt_kind}aggregate_tps_1"]
            print(f"\nflywheel 16 streams / 1 stream aggregate, {label}: {ratio:.2f}×")


if __name__ == "__main__":
    main()
