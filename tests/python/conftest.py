"""Starts the real flywheel binary on an ephemeral 127.0.0.1 port for the SDK tests."""

import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest


@pytest.fixture(scope="session")
def server():
    yield from start_flywheel()


def start_flywheel(config=None):
    """Runs the binary until the generator is closed, yielding its address and data directory; `config` is the
    text of a flywheel.toml to start it with."""
    binary = os.environ.get("FLYWHEEL_BIN")
    models = os.environ.get("FLYWHEEL_MODELS_DIR")
    if not binary or not models:
        pytest.fail("set FLYWHEEL_BIN and FLYWHEEL_MODELS_DIR (scripts/test does)")
    data_dir = tempfile.mkdtemp(prefix="flywheel-sdk-")
    args = [binary, "up", "--listen", "127.0.0.1:0", "--data-dir", data_dir, "--models-dir", models, "--threads", "2"]
    if config is not None:
        path = os.path.join(data_dir, "flywheel.toml")
        with open(path, "w") as file:
            file.write(config)
        args += ["--config", path]
    process = subprocess.Popen(
        args,
        stderr=subprocess.PIPE,
        text=True,
    )
    address = None
    deadline = time.time() + 60
    for line in process.stderr:
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            address = match.group(1)
            break
        if time.time() > deadline:
            break
    assert address, "the server did not start listening"
    # Keep draining the log so the server never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()
    while True:
        try:
            with urllib.request.urlopen(address + "/readyz") as response:
                if json.load(response)["ready"]:
                    break
        except OSError:
            pass
        assert time.time() < deadline + 60, "the server did not become ready"
        time.sleep(0.1)
    yield {"base_url": address, "data_dir": data_dir}
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
