"""Claude Code, Codex CLI and opencode, pinned from npm, do a small coding task through freeway.

Each CLI is pointed at `freeway serve` the way README's "Use with Claude Code / Codex CLI /
opencode" section says, and freeway forwards to the mock upstream on each provider protocol.
The mock's `coding-agent` model plays the task with the client's own tools: read `calc.py` and
`test_calc.py`, fix `add`, run the test, answer. The task is done when the file on disk is fixed
and the client prints the test's output from the answer.

Installed by `make clients` (make test does).
"""

import json
import os
import subprocess

import httpx
import pytest

from conftest import MASTER_KEY, ROOT

BIN = ROOT / "tests/clients/node_modules/.bin"
# opencode installs its provider package (@ai-sdk/openai-compatible) on first use: keep it.
OPENCODE_CACHE = ROOT / "tests/clients/node_modules/.opencode-cache"
PROTOCOLS = {"openai": "openai", "anthropic": "claude", "gemini": "gemini"}

BUGGY = "def add(a, b):\n    return a - b\n"
TEST = "from calc import add\n\nassert add(2, 3) == 5, add(2, 3)\nprint('ok: 2 + 3 == 5')\n"
ANSWER = "Fixed add() in calc.py: it subtracted. The test run said: ok: 2 + 3 == 5"


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    (path / "calc.py").write_text(BUGGY)
    (path / "test_calc.py").write_text(TEST)
    return path


def clean_env(home):
    """The CLIs' settings live under HOME and XDG dirs: a fresh one per run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_", "CODEX_"))}
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local/share"),
        XDG_STATE_HOME=str(home / ".local/state"),
        NO_COLOR="1",
    )
    return env


def run(argv, cwd, env):
    assert BIN.exists(), f"{BIN} is missing: run `make clients` (make test does)"
    # opencode finds its project from $PWD, which a changed cwd alone leaves stale.
    env = dict(env, PWD=str(cwd))
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


def claude_code(base, repo, model, home):
    env = clean_env(home)
    env.update(
        ANTHROPIC_BASE_URL=base,
        ANTHROPIC_API_KEY=MASTER_KEY,
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_TELEMETRY="1",
        # Claude Code refuses to skip permissions as root outside a sandbox; CI runs as root.
        IS_SANDBOX="1",
    )
    argv = [str(BIN / "claude"), "-p", "fix the failing test", "--model", model,
            "--dangerously-skip-permissions", "--max-turns", "8"]
    return run(argv, repo, env)


def codex(base, repo, model, home):
    env = clean_env(home)
    env.update(CODEX_HOME=str(home / ".codex"), FREEWAY_API_KEY=MASTER_KEY)
    (home / ".codex").mkdir(parents=True, exist_ok=True)
    (home / ".codex/config.toml").write_text(
        f"""model = "{model}"
model_provider = "freeway"
web_search = "disabled"

[model_providers.freeway]
name = "freeway"
base_url = "{base}/v1"
env_key = "FREEWAY_API_KEY"
"""
    )
    argv = [str(BIN / "codex"), "exec", "--skip-git-repo-check",
            "--dangerously-bypass-approvals-and-sandbox", "fix the failing test"]
    return run(argv, repo, env)


def opencode(base, repo, model, home):
    env = clean_env(home)
    env.update(XDG_CACHE_HOME=str(OPENCODE_CACHE), OPENCODE_DISABLE_AUTOUPDATE="1")
    (repo / "opencode.json").write_text(json.dumps({
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            "freeway": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "freeway",
                "options": {"baseURL": f"{base}/v1", "apiKey": "{env:FREEWAY_API_KEY}"},
                "models": {model: {"name": model}},
            }
        },
        "model": f"freeway/{model}",
        "autoupdate": False,
        "share": "disabled",
    }))
    env["FREEWAY_API_KEY"] = MASTER_KEY
    return run([str(BIN / "opencode"), "run", "fix the failing test"], repo, env)


CLIENTS = {"claude-code": claude_code, "codex": codex, "opencode": opencode}


def upstream_calls(mock_upstream):
    return httpx.get(mock_upstream + "/_mock/calls").json().get("coding-agent", 0)


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_the_client_fixes_the_failing_test(freeway, mock_upstream, repo, tmp_path, client, protocol):
    model = f"{PROTOCOLS[protocol]}/coding-agent"
    before = upstream_calls(mock_upstream)
    done = CLIENTS[client](freeway, repo, model, tmp_path / "home")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (repo / "calc.py").read_text() == "def add(a, b):\n    return a + b\n", done.stdout
    assert ANSWER in done.stdout + done.stderr
    # Four steps reached the upstream through freeway (read, edit, run, answer), at least.
    assert upstream_calls(mock_upstream) - before >= 4


def test_claude_code_counts_tokens_through_freeway(freeway):
    """Claude Code's token-counting side call is answered for any model behind freeway."""
    r = httpx.post(
        freeway + "/v1/messages/count_tokens?beta=true",
        headers={"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"},
        json={
            "model": "gemini/coding-agent",
            "system": [{"type": "text", "text": "You are a coding agent."}],
            "messages": [
                {"role": "user", "content": "fix the failing test"},
                {"role": "system", "content": [{"type": "text", "text": "Primary working directory: /w"}]},
            ],
            "tools": [{"name": "Read", "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}}}],
        },
    )
    assert r.status_code == 200, r.text
    n = r.json()["input_tokens"]
    assert 20 < n < 200, n
    unknown = httpx.post(
        freeway + "/v1/messages/count_tokens",
        headers={"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"},
        json={"model": "nowhere/none", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert unknown.status_code == 404, unknown.text
    assert unknown.json()["type"] == "error"
