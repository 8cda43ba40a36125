"""Starts the mock upstream and `freeway serve` once per session.

Binaries come from FREEWAY_BIN / MOCK_BIN, else target/debug of this repository.
"""

import os
import pathlib
import socket
import subprocess
import time

import httpx
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
FREEWAY_BIN = os.environ.get("FREEWAY_BIN", str(TARGET / "debug" / "freeway"))
MOCK_BIN = os.environ.get("MOCK_BIN", str(TARGET / "debug" / "freeway-mock-upstream"))

MASTER_KEY = "fw-test-master-key"
OPENAI_KEY = "sk-upstream-openai-SECRET"
ANTHROPIC_KEY = "sk-ant-upstream-SECRET"
GEMINI_KEY = "AIza-upstream-SECRET"

# One model per provider protocol; every ingress test runs against each.
MODELS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "claude/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.0-flash",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, proc, what):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready at {url}")


@pytest.fixture(scope="session")
def mock_upstream():
    port = free_port()
    proc = subprocess.Popen(
        [
            MOCK_BIN,
            "--listen", f"127.0.0.1:{port}",
            "--openai-key", OPENAI_KEY,
            "--anthropic-key", ANTHROPIC_KEY,
            "--gemini-key", GEMINI_KEY,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert "listening on" in line, line
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def write_config(tmp, upstream, extra=""):
    path = tmp / "freeway.toml"
    path.write_text(
        f"""
[server]
master_key = "${{E2E_MASTER_KEY}}"
max_body_bytes = 65536
keep_alive_secs = 0.2

[storage]
url = "sqlite://{tmp}/freeway.db"

[[providers]]
name = "openai"
protocol = "openai"
base_url = "{upstream}/v1"
api_key = "${{E2E_OPENAI_KEY}}"
read_timeout_secs = 1.5

[[providers]]
name = "claude"
protocol = "anthropic"
base_url = "{upstream}"
api_key = "${{E2E_ANTHROPIC_KEY}}"

[[providers]]
name = "gemini"
protocol = "gemini"
base_url = "{upstream}"
api_key = "${{E2E_GEMINI_KEY}}"

[[providers]]
name = "badkey"
protocol = "anthropic"
base_url = "{upstream}"
api_key = "sk-ant-wrong-key-DO-NOT-LEAK"
models = ["claude-x"]

[[routes]]
name = "resilient"
targets = ["openai/error-503", "claude/claude-sonnet-4-5"]
strategy = "fallback"
{extra}
"""
    )
    return path


def start_freeway(config, env_extra=None, stderr=subprocess.PIPE):
    port = free_port()
    env = dict(os.environ)
    env.update(
        E2E_MASTER_KEY=MASTER_KEY,
        E2E_OPENAI_KEY=OPENAI_KEY,
        E2E_ANTHROPIC_KEY=ANTHROPIC_KEY,
        E2E_GEMINI_KEY=GEMINI_KEY,
        FREEWAY_LOG="warn",
        NO_COLOR="1",
    )
    env.update(env_extra or {})
    proc = subprocess.Popen(
        [FREEWAY_BIN, "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"],
        env=env,
        stderr=stderr,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    wait_ready(base + "/healthz", proc, "freeway")
    return proc, base


def metric(base, name, **labels):
    """The sum of `name` over the series of a server's /metrics whose labels include `labels`."""
    from prometheus_client.parser import text_string_to_metric_families

    r = httpx.get(base + "/metrics", headers={"authorization": f"Bearer {MASTER_KEY}"})
    assert r.status_code == 200, r.text
    return sum(
        s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
        if s.name == name and set(labels.items()) <= set(s.labels.items())
    )


@pytest.fixture(scope="session")
def freeway(mock_upstream, tmp_path_factory):
    config = write_config(tmp_path_factory.mktemp("freeway"), mock_upstream)
    proc, base = start_freeway(config)
    yield base
    proc.terminate()
    try:
        _, stderr = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
    # Secrets never reach the logs.
    for secret in (OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY, "sk-ant-wrong-key-DO-NOT-LEAK", MASTER_KEY):
        assert secret not in stderr


@pytest.fixture(scope="session")
def openai_client(freeway):
    import openai

    return openai.OpenAI(base_url=freeway + "/v1", api_key=MASTER_KEY, max_retries=0)


@pytest.fixture(scope="session")
def anthropic_client(freeway):
    import anthropic

    return anthropic.Anthropic(base_url=freeway, api_key=MASTER_KEY, max_retries=0)


@pytest.fixture(params=sorted(MODELS), ids=sorted(MODELS))
def model(request):
    return MODELS[request.param]
