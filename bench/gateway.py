"""Gateway overhead benchmark: flywheel and LiteLLM proxy side by side, in one run, in front of one fake upstream.

Starts `fake-upstream` (a fast OpenAI-compatible server in Rust) and measures each scenario four ways with
`loadgen` (a closed-loop HTTP/1.1 client): straight at the upstream ("direct"), through `floor-proxy` (the thinnest
reverse proxy hyper and tokio make: what the extra hop alone costs, the floor under any gateway on that stack),
through LiteLLM proxy, and through `flywheel up`. The gateways' figures are reported as added latency: gateway percentile minus direct percentile,
same scenario, same run, then the median over the runs. Also the requests/s each sustains, and the RSS of each
gateway's process tree while it holds 1,000 streams open (against a second upstream that delays every chunk).

Only the standard library; LiteLLM lives in its own venv (bench/gateway installs it). Every process this script
starts runs in its own session and is killed, with its children, on exit, error or Ctrl-C."""

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

MODEL = "bench-model"
SLOW_MODEL = "bench-model-slow"
LITELLM_MASTER_KEY = "sk-bench-litellm-master"
FLYWHEEL_MASTER_KEY = "sk-bench-flywheel-master"

# (label, streaming, concurrency). Every scenario is measured direct, through LiteLLM and through flywheel.
SCENARIOS = [
    ("chat, 1 client", False, 1),
    ("chat, 64 clients", False, 64),
    ("chat, 512 clients", False, 512),
    ("chat streamed, 1 client", True, 1),
    ("chat streamed, 64 clients", True, 64),
    ("chat streamed, 512 clients", True, 512),
    ("max throughput: chat, 256 clients", False, 256),
]


class Processes:
    """Every process started here, each in its own session, so one killpg ends it and its children."""

    def __init__(self):
        self.running = {}

    def start(self, name, argv, **kwargs):
        process = subprocess.Popen(argv, start_new_session=True, **kwargs)
        self.running[process.pid] = (name, process)
        return process

    def stop(self, process, grace_s=5.0):
        """SIGTERM to the process group, a grace period for the leader, then SIGKILL to whatever is left."""
        if self.running.pop(process.pid, None) is None:
            return
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                pass

    def stop_named(self, name):
        for started_as, process in list(self.running.values()):
            if started_as == name:
                self.stop(process)

    def stop_all(self):
        for _, process in list(self.running.values()):
            self.stop(process, grace_s=3.0)


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def note(message):
    print(message, file=sys.stderr, flush=True)


def http(method, url, body=None, headers=None, timeout=10):
    """One request; returns (status, body text) and never raises for an HTTP error status."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"content-type": "application/json", **(headers or {})}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def wait_ready(process, url, timeout_s, log_path):
    """Polls `url` until it answers 200; a clear error when the process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with status {process.returncode} before it was ready:\n{tail(log_path)}")
        try:
            if http("GET", url, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"not ready after {timeout_s:.0f} s:\n{tail(log_path)}")


def summary(error):
    """An error in one line: its first line and, when it quotes a log, the log's last line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return repr(error)
    return lines[0] if len(lines) == 1 else f"{lines[0]} … {lines[-1]}"


def tail(path, lines=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def children_of():
    """Maps each pid to the pids of its children, from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def proc_field_kib(path, key):
    """The value in KiB of the line starting with `key` in a /proc file, 0 when absent or the process is gone."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory_mib(pid):
    """(RSS, PSS) in MiB summed over `pid` and its descendants. RSS counts shared pages once per process; PSS
    splits them, so it is the fairer sum for a multi-process server."""
    tree = children_of()
    pids, rss_kib, pss_kib = [pid], 0, 0
    while pids:
        current = pids.pop()
        pids.extend(tree.get(current, []))
        rss_kib += proc_field_kib(f"/proc/{current}/status", "VmRSS:")
        pss_kib += proc_field_kib(f"/proc/{current}/smaps_rollup", "Pss:")
    return rss_kib / 1024, pss_kib / 1024


def tree_cpu_seconds(pid):
    """CPU time (user + system) used so far by `pid` and its descendants, in seconds."""
    tree = children_of()
    pids, ticks = [pid], 0
    while pids:
        current = pids.pop()
        pids.extend(tree.get(current, []))
        try:
            with open(f"/proc/{current}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def settle(pid, limit_s=120.0):
    """Waits until the process tree is idle (under 10% of a core over half a second). A closed-loop run leaves
    requests in flight when it stops; a slow gateway works through them for seconds, and that work must not
    land in the next measurement. Returns the seconds waited."""
    started = time.monotonic()
    before = tree_cpu_seconds(pid)
    while time.monotonic() - started < limit_s:
        time.sleep(0.5)
        now = tree_cpu_seconds(pid)
        if now - before < 0.05:
            break
        before = now
    return time.monotonic() - started


class Bench:
    def __init__(self, args, processes, work_dir):
        self.args = args
        self.processes = processes
        self.work_dir = work_dir
        self.bin_dir = os.path.abspath(args.bin_dir)
        self.notes = []
        # gateway -> (RSS, PSS) in MiB right after it started and answered one request of each kind
        self.start_memory = {}

    def binary(self, name):
        return os.path.join(self.bin_dir, name)

    def start_logged(self, name, argv, **kwargs):
        """Starts a server with its stdout and stderr going to WORK_DIR/NAME.log; returns it and the log's path."""
        log_path = os.path.join(self.work_dir, f"{name}.log")
        with open(log_path, "w") as log:
            process = self.processes.start(name, argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.work_dir,
                                           **kwargs)
        return process, log_path

    def start_upstream(self, name, extra):
        argv = [self.binary("fake-upstream"), "--listen", "127.0.0.1:0", "--chunks", str(self.args.chunks), *extra]
        if self.args.upstream_threads:
            argv += ["--threads", str(self.args.upstream_threads)]
        process = self.processes.start(name, argv, stdout=subprocess.PIPE, text=True)
        line = process.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise RuntimeError(f"{name} did not start: {line!r}")
        return process, line.removeprefix("listening on ")

    def loadgen(self, url, concurrency, streaming, model, headers, duration_s, warmup_s):
        argv = [self.binary("loadgen"), "--url", url, "--concurrency", str(concurrency), "--model", model,
                "--duration-secs", str(duration_s), "--warmup-secs", str(warmup_s),
                "--threads", str(self.args.loadgen_threads), "--timeout-secs", "60"]
        if streaming:
            argv.append("--stream")
        for name, value in headers.items():
            argv += ["--header", f"{name}: {value}"]
        process = self.processes.start("loadgen", argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = process.communicate(timeout=duration_s + warmup_s + 120)
        finally:
            self.processes.stop(process)
        if process.returncode != 0:
            raise RuntimeError(f"loadgen failed ({process.returncode}): {err.strip()}")
        return json.loads(out)

    def start_floor(self, name, upstream):
        argv = [self.binary("floor-proxy"), "--listen", "127.0.0.1:0", "--upstream", upstream]
        process = self.processes.start(name, argv, stdout=subprocess.PIPE, text=True)
        line = process.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise RuntimeError(f"{name} did not start: {line!r}")
        return process, "http://" + line.removeprefix("listening on ")

    def start_litellm(self, upstream, slow_upstream):
        config = os.path.join(self.work_dir, "litellm.yaml")
        with open(config, "w") as f:
            f.write("model_list:\n")
            for model, base in ((MODEL, upstream), (SLOW_MODEL, slow_upstream)):
                f.write(f"  - model_name: {model}\n    litellm_params:\n      model: openai/{model}\n"
                        f"      api_base: http://{base}/v1\n      api_key: fake-upstream-needs-no-key\n")
            f.write(f"general_settings:\n  master_key: {LITELLM_MASTER_KEY}\n")
        # Uvicorn's access log off, as LiteLLM's production guide advises for its own logs (LITELLM_LOG=ERROR).
        log_config = os.path.join(self.work_dir, "litellm-logging.json")
        with open(log_config, "w") as f:
            json.dump({"version": 1, "disable_existing_loggers": False,
                       "loggers": {"uvicorn.access": {"level": "WARNING"}, "uvicorn.error": {"level": "WARNING"}}}, f)
        port = free_port()
        env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        process, log_path = self.start_logged(
            "litellm",
            [self.args.litellm, "--config", config, "--host", "127.0.0.1", "--port", str(port),
             "--num_workers", str(self.args.litellm_workers), "--log_config", log_config],
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        wait_ready(process, base + "/health/readiness", 180, log_path)
        return process, base, {"authorization": f"Bearer {LITELLM_MASTER_KEY}"}

    def start_flywheel(self, upstream, slow_upstream):
        config = os.path.join(self.work_dir, "bench-flywheel.toml")
        with open(config, "w") as f:
            f.write("embedded_models = false   # skip loading the local CPU models; this bench is the gateway alone\n")
            for model, base in ((MODEL, upstream), (SLOW_MODEL, slow_upstream)):
                f.write(f'\n[[models]]\nid = "{model}"\nkind = "chat"\ncontext_length = 8192\n'
                        'input_usd_per_mtok = 0.15\noutput_usd_per_mtok = 0.6\n'
                        f'[[models.deployments]]\nprovider = "openai"\nbase_url = "http://{base}/v1"\n'
                        f'upstream_model = "{model}"\n')
        data_dir = tempfile.mkdtemp(prefix="flywheel-data-", dir=self.work_dir)
        port = free_port()
        process, log_path = self.start_logged(
            "flywheel",
            [self.binary("flywheel"), "up", "--config", config, "--listen", f"127.0.0.1:{port}",
             "--data-dir", data_dir, "--master-key", FLYWHEEL_MASTER_KEY, "--log", "warn"],
        )
        base = f"http://127.0.0.1:{port}"
        wait_ready(process, base + "/readyz", 120, log_path)
        admin = {"authorization": f"Bearer {FLYWHEEL_MASTER_KEY}"}
        body = {"tenant": "bench", "rpm": 100_000_000, "tpm": 100_000_000_000}
        status, text = http("POST", base + "/admin/keys", body, admin)
        if status in (400, 422):
            # An older key store holds tokens-per-minute in 32 bits; the largest it takes is limit enough here.
            body["tpm"] = 2**32 - 1
            status, text = http("POST", base + "/admin/keys", body, admin)
            self.notes.append("flywheel refused tpm=1e11 for the tenant key; used tpm=4,294,967,295")
        if status // 100 != 2:
            raise RuntimeError(f"POST /admin/keys answered {status}: {text[:300]}")
        key = json.loads(text)["key"]
        return process, base, {"authorization": f"Bearer {key}"}

    def smoke(self, name, base, headers):
        """One plain and one streamed request, so a misconfigured gateway fails loudly here, not as 0 req/s."""
        for stream in (False, True):
            body = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}
            if stream:
                body |= {"stream": True, "stream_options": {"include_usage": True}}
            status, text = http("POST", base + "/v1/chat/completions", body, headers, timeout=30)
            if status != 200 or (stream and "data: [DONE]" not in text) or (not stream and '"choices"' not in text):
                raise RuntimeError(f"{name}: {'streamed ' if stream else ''}chat answered {status}: {text[:300]}")

    def hold_streams(self, name, pid, base, headers):
        """RSS of the gateway's process tree while `--streams` clients each hold a slow stream open."""
        samples = []
        stop = threading.Event()
        rounds = self.args.streams_warmup_s / 0.2

        def sample():
            seen = 0
            while not stop.wait(0.2):
                seen += 1
                # Only once every client is in a stream: the warm-up opens them.
                if seen > rounds:
                    samples.append(tree_memory_mib(pid))

        idle = tree_memory_mib(pid)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            result = self.loadgen(base + "/v1/chat/completions", self.args.streams, True, SLOW_MODEL, headers,
                                  self.args.streams_duration_s, self.args.streams_warmup_s)
        finally:
            stop.set()
            sampler.join()
        peak_rss = max((rss for rss, _ in samples), default=float("nan"))
        peak_pss = max((pss for _, pss in samples), default=float("nan"))
        return {"idle_rss_mib": idle[0], "idle_pss_mib": idle[1], "peak_rss_mib": peak_rss,
                "peak_pss_mib": peak_pss, "completed": result["requests"], "errors": result["errors"]}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_us(value):
    """Microseconds for people: µs below a millisecond, ms below a second, then seconds."""
    if value is None:
        return "–"
    magnitude = abs(value)
    if magnitude < 1000:
        return f"{value:.0f} µs"
    if magnitude < 100_000:
        return f"{value / 1000:.3g} ms"
    if magnitude < 1_000_000:
        return f"{value / 1000:.0f} ms"
    return f"{value / 1_000_000:.2f} s"


def fmt_rate(value):
    return "–" if value is None else f"{value:,.0f}"


def summarize(results, runs, gateways):
    """Median over runs of each gateway's added p50/p99 (gateway minus direct, same run) and of its req/s."""
    rows = []
    for label, streaming, concurrency in SCENARIOS:
        row = {"label": label, "streaming": streaming}
        direct = [results.get((run, label, "direct")) for run in range(runs)]
        row["direct_p50"] = median([d and d["latency_us"]["p50"] for d in direct])
        row["direct_p99"] = median([d and d["latency_us"]["p99"] for d in direct])
        row["direct_rps"] = median([d and d["requests_per_s"] for d in direct])
        row["direct_ttft"] = median([d and d.get("ttft_us", {}).get("p50") for d in direct])
        for gateway in gateways:
            added = {"p50": [], "p99": [], "rps": [], "ttft": []}
            for run in range(runs):
                d, g = results.get((run, label, "direct")), results.get((run, label, gateway))
                if g and not g["requests"]:
                    row[f"{gateway}_empty"] = row.get(f"{gateway}_empty", 0) + 1
                if not d or not g or not g["requests"]:
                    continue
                added["p50"].append(g["latency_us"]["p50"] - d["latency_us"]["p50"])
                added["p99"].append(g["latency_us"]["p99"] - d["latency_us"]["p99"])
                added["rps"].append(g["requests_per_s"])
                if "ttft_us" in g and "ttft_us" in d:
                    added["ttft"].append(g["ttft_us"]["p50"] - d["ttft_us"]["p50"])
            for key, values in added.items():
                row[f"{gateway}_{key}"] = median(values)
        rows.append(row)
    return rows


def print_report(rows, gateways, memory, args, bench, litellm_version):
    runs = args.runs
    print()
    print(f"Gateway overhead, median of {runs} run{'s' if runs > 1 else ''} "
          f"({args.warmup_s:g} s warm-up + {args.duration_s:g} s each); added = gateway − direct, same run.")
    print()
    print("| scenario | direct p50 / p99 | direct req/s | floor added p50 / p99 | floor req/s "
          "| LiteLLM added p50 / p99 | LiteLLM req/s "
          "| flywheel added p50 / p99 | flywheel req/s | added p50, LiteLLM ÷ flywheel |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        cells = [row["label"], f"{fmt_us(row['direct_p50'])} / {fmt_us(row['direct_p99'])}",
                 fmt_rate(row["direct_rps"])]
        for gateway in ("floor", "litellm", "flywheel"):
            if gateway in gateways and row[f"{gateway}_p50"] is None and row.get(f"{gateway}_empty"):
                cells += [f"none completed in {args.duration_s:g} s", "0"]
            elif gateway in gateways:
                cells += [f"{fmt_us(row[f'{gateway}_p50'])} / {fmt_us(row[f'{gateway}_p99'])}",
                          fmt_rate(row[f"{gateway}_rps"])]
            else:
                cells += ["skipped", "–"]
        lite, fly = row.get("litellm_p50"), row.get("flywheel_p50")
        if lite is not None and fly:
            ratio = lite / fly
            cells.append(f"{ratio:,.0f}×" if abs(ratio) >= 10 else f"{ratio:.2g}×")
        else:
            cells.append("–")
        print("| " + " | ".join(cells) + " |")
    print()
    print("Time to the first content chunk, streamed (p50):")
    print()
    print("| scenario | direct | floor added | LiteLLM added | flywheel added |")
    print("|---|---|---|---|---|")
    for row in rows:
        if row["streaming"]:
            print(f"| {row['label']} | {fmt_us(row['direct_ttft'])} | {fmt_us(row.get('floor_ttft'))} "
                  f"| {fmt_us(row.get('litellm_ttft'))} | {fmt_us(row.get('flywheel_ttft'))} |")
    print()
    for gateway in gateways:
        best = max((row[f"{gateway}_rps"] or 0 for row in rows if not row["streaming"]), default=0)
        print(f"- {gateway}: max {best:,.0f} requests/s (non-streamed, best scenario)")
    for gateway, runs_memory in memory.items():
        if not runs_memory:
            continue
        peak_rss = median([m["peak_rss_mib"] for m in runs_memory])
        peak_pss = median([m["peak_pss_mib"] for m in runs_memory])
        idle_rss = median([m["idle_rss_mib"] for m in runs_memory])
        completed = median([m["completed"] for m in runs_memory])
        errors = {}
        for m in runs_memory:
            for kind, count in m["errors"].items():
                errors[kind] = errors.get(kind, 0) + count
        print(f"- {gateway}: RSS {peak_rss:.0f} MiB (PSS {peak_pss:.0f} MiB) of its process tree while holding "
              f"{args.streams:,} concurrent streams (just started: {bench.start_memory[gateway][0]:.0f} MiB; idle "
              f"before the streams, after the scenarios: {idle_rss:.0f} MiB); {completed:,.0f} streams "
              f"completed in {args.streams_duration_s:g} s" + (f", errors {errors}" if errors else ""))
    print()
    print("Notes:")
    if "litellm" in gateways:
        print(f"- LiteLLM proxy {litellm_version}, {args.litellm_workers} uvicorn workers, LITELLM_LOG=ERROR, access "
              "log off; master key only: its virtual keys, limits and spend tracking need PostgreSQL through Prisma, "
              "whose query engine is a download from outside the package registries, so they are off.")
    print("- floor: `bench/floor-proxy`, hyper's server and pooled client with nothing between them (no parsing, "
          "keys, limits or ledger); its RSS figure is a second one before the slow upstream.")
    if "flywheel" in gateways:
        print("- flywheel: a tenant virtual key with rpm/tpm limits, the ledger on (SQLite in a fresh data directory).")
    print(f"- fake-upstream: {args.chunks} content chunks per completion; the streams line uses a second one that "
          f"waits {args.slow_chunk_delay_ms} ms before each chunk. loadgen, upstream and gateway share the machine's "
          f"{os.cpu_count()} cores.")
    for line in bench.notes:
        print(f"- {line}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin-dir", required=True, help="directory holding fake-upstream, floor-proxy, loadgen and flywheel")
    parser.add_argument("--litellm", help="the `litellm` executable in its venv; without it LiteLLM is skipped")
    parser.add_argument("--litellm-version", default="?")
    parser.add_argument("--litellm-workers", type=int, default=2)
    parser.add_argument("--no-flywheel", action="store_true", help="skip flywheel (e.g. it did not build)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--warmup-s", type=float, default=2.0)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 run, 0.5 s warm-up, 2 s per scenario")
    parser.add_argument("--chunks", type=int, default=16, help="content chunks per completion")
    parser.add_argument("--streams", type=int, default=1000, help="concurrent streams for the RSS figure")
    parser.add_argument("--slow-chunk-delay-ms", type=int, default=200)
    parser.add_argument("--streams-warmup-s", type=float, default=3.0)
    parser.add_argument("--streams-duration-s", type=float, default=5.0)
    parser.add_argument("--loadgen-threads", type=int, default=1)
    parser.add_argument("--upstream-threads", type=int, default=None)
    parser.add_argument("--raw", help="also write every measurement as JSON to this file")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.duration_s, args.warmup_s = 1, 2.0, 0.5
        args.streams_warmup_s, args.streams_duration_s = 2.0, 2.0

    # Ctrl-C raises KeyboardInterrupt even when started in the background, where SIGINT arrives ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    # Each of 1,000 streams through a gateway holds a descriptor on both of its sides.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    processes = Processes()
    work_dir = tempfile.mkdtemp(prefix="flywheel-gateway-bench-")
    try:
        run(args, processes, work_dir)
    except KeyboardInterrupt:
        note("interrupted")
        sys.exit(130)
    finally:
        processes.stop_all()
        shutil.rmtree(work_dir, ignore_errors=True)


def run(args, processes, work_dir):
    bench = Bench(args, processes, work_dir)
    load = os.getloadavg()[0]
    bench.notes.append(f"load average (1 min) when the run started: {load:.2f}; anything else running skews every "
                       "column, the gateways' most")
    if load > 0.5:
        note(f"warning: the machine is busy (load average {load:.2f}); the figures will be noisy")
    upstream_process, upstream = bench.start_upstream("fake-upstream", [])
    _, slow_upstream = bench.start_upstream("fake-upstream-slow", ["--chunk-delay-ms", str(args.slow_chunk_delay_ms)])
    note(f"fake upstream on {upstream}, slow one on {slow_upstream}")
    # name -> (process whose tree must be idle before a measurement, base URL, headers)
    targets = {"direct": (upstream_process, f"http://{upstream}", {})}

    # The floor forwards without reading the body, so the streams figure needs a second one before the slow upstream.
    floor_process, floor_base = bench.start_floor("floor-proxy", upstream)
    targets["floor"] = (floor_process, floor_base, {})
    slow_floor = bench.start_floor("floor-proxy-slow", slow_upstream)
    bench.start_memory["floor"] = tree_memory_mib(slow_floor[0].pid)
    if args.litellm:
        note("starting LiteLLM proxy (takes a while)")
        try:
            process, base, headers = bench.start_litellm(upstream, slow_upstream)
            bench.smoke("LiteLLM", base, headers)
            targets["litellm"] = (process, base, headers)
            bench.start_memory["litellm"] = tree_memory_mib(process.pid)
        except RuntimeError as error:
            note(f"SKIP LiteLLM: {error}")
            processes.stop_named("litellm")
            bench.notes.append(f"LiteLLM skipped: {summary(error)}")
    else:
        bench.notes.append("LiteLLM skipped: no --litellm given")
    if not args.no_flywheel:
        note("starting flywheel")
        try:
            process, base, headers = bench.start_flywheel(upstream, slow_upstream)
            bench.smoke("flywheel", base, headers)
            targets["flywheel"] = (process, base, headers)
            bench.start_memory["flywheel"] = tree_memory_mib(process.pid)
        except (RuntimeError, KeyError, ValueError) as error:
            note(f"SKIP flywheel: {error}")
            processes.stop_named("flywheel")
            bench.notes.append(f"flywheel skipped: {summary(error)}")
    else:
        bench.notes.append("flywheel skipped: --no-flywheel (it did not build)")
    gateways = [name for name in ("floor", "litellm", "flywheel") if name in targets]

    results = {}
    for run_index in range(args.runs):
        for label, streaming, concurrency in SCENARIOS:
            for name, (process, base, headers) in targets.items():
                waited_s = settle(process.pid)
                if waited_s > 5:
                    note(f"  ({name} took {waited_s:.0f} s to finish the previous run's requests)")
                result = bench.loadgen(base + "/v1/chat/completions", concurrency, streaming, MODEL, headers,
                                       args.duration_s, args.warmup_s)
                results[(run_index, label, name)] = result
                errors = f", errors {result['errors']}" if result["error_count"] else ""
                if not result["requests"]:
                    errors += f", none completed inside the {args.duration_s:g} s window"
                latency = result["latency_us"]
                note(f"run {run_index + 1}/{args.runs} {label:<34} {name:<8} p50 {fmt_us(latency['p50']):>9} "
                     f"p99 {fmt_us(latency['p99']):>9} {result['requests_per_s']:>9,.0f} req/s{errors}")

    memory = {}
    for name in gateways:
        process, base, headers = slow_floor + ({},) if name == "floor" else targets[name]
        memory[name] = []
        for run_index in range(args.runs):
            settle(process.pid)
            figures = bench.hold_streams(name, process.pid, base, headers)
            memory[name].append(figures)
            note(f"run {run_index + 1}/{args.runs} {args.streams} streams {name:<8} peak RSS "
                 f"{figures['peak_rss_mib']:.0f} MiB, PSS {figures['peak_pss_mib']:.0f} MiB, "
                 f"{figures['completed']} completed, errors {figures['errors']}")

    if args.raw:
        with open(args.raw, "w") as f:
            json.dump({"results": [{"run": r, "scenario": s, "target": t, **v} for (r, s, t), v in results.items()],
                       "memory": memory}, f, indent=1)
    rows = summarize(results, args.runs, gateways)
    print_report(rows, gateways, memory, args, bench, args.litellm_version)


if __name__ == "__main__":
    main()
