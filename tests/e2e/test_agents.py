"""Agents end to end: `freeway run --json`, the sessions API and the official `openai` client
with `model: "agent:…"`, each on every provider protocol. The mock upstream's `coding-agent`
model plays a coding task on a repository with a failing test: read the test and the code,
fix the bug, run the test, answer."""

import json
import os
import subprocess

import httpx
import openai
import pytest

from conftest import (
    ROOT,
    ANTHROPIC_KEY,
    FREEWAY_BIN,
    GEMINI_KEY,
    MASTER_KEY,
    OPENAI_KEY,
    metric,
    start_freeway,
    write_config,
)

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
PROTOCOLS = {"openai": "openai", "anthropic": "claude", "gemini": "gemini"}

BUGGY = "def add(a, b):\n    return a - b\n"
TEST = "from calc import add\n\nassert add(2, 3) == 5, add(2, 3)\nprint('ok: 2 + 3 == 5')\n"
# The reference MCP server from npm (installed by `npm ci --prefix tests/mcp`).
EVERYTHING = ROOT / "tests/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js"


def make_repo(path):
    path.mkdir(parents=True, exist_ok=True)
    (path / "calc.py").write_text(BUGGY)
    (path / "test_calc.py").write_text(TEST)
    return path


def agents_config(workspace):
    lines = [
        f"""
[sandbox]
workspace = "{workspace}"
on_missing = "degrade"
default_timeout_ms = 20000
"""
    ]
    lines.append(
        f"""
[[mcp_servers]]
name = "everything"
command = ["node", "{EVERYTHING}", "stdio"]
tools = ["echo", "get-sum"]
kind = "read"

[[mcp_servers]]
name = "down"
command = ["/nonexistent/mcp-server"]

[[agents]]
name = "mcp-user"
model = "openai/coding-agent"
tools = ["read_file"]
mcp_servers = ["everything", "down"]
"""
    )
    for protocol, provider in PROTOCOLS.items():
        lines.append(
            f"""
[[agents]]
name = "coder-{protocol}"
model = "{provider}/coding-agent"
max_steps = 10
"""
        )
    return "\n".join(lines)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return tmp_path_factory.mktemp("agents-workspace")


@pytest.fixture(scope="module")
def agent_config(mock_upstream, tmp_path_factory, workspace):
    return write_config(tmp_path_factory.mktemp("agents"), mock_upstream, agents_config(workspace))


@pytest.fixture(scope="module")
def agent_base(agent_config):
    proc, base = start_freeway(agent_config)
    yield base
    proc.terminate()
    try:
        proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def cli_env():
    env = dict(os.environ)
    env.update(
        E2E_MASTER_KEY=MASTER_KEY,
        E2E_OPENAI_KEY=OPENAI_KEY,
        E2E_ANTHROPIC_KEY=ANTHROPIC_KEY,
        E2E_GEMINI_KEY=GEMINI_KEY,
        FREEWAY_LOG="warn",
        NO_COLOR="1",
    )
    return env


def freeway_run(config, *args):
    return subprocess.run(
        [FREEWAY_BIN, "run", "--config", str(config), "--json", *args],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def steps(events):
    return [e["type"] for e in events if e["type"] not in ("message.delta", "tool.output")]


EXPECTED = [
    "session.started",
    "message.completed",
    "tool.started",
    "tool.started",
    "tool.finished",
    "tool.finished",
    "message.completed",
    "tool.started",
    "tool.finished",
    "message.completed",
    "tool.started",
    "tool.finished",
    "message.completed",
    "session.idle",
]


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_freeway_run_fixes_the_test_and_resumes(agent_config, workspace, protocol):
    repo = make_repo(workspace / f"cli-{protocol}")
    done = freeway_run(agent_config, "fix the failing test", "--cwd", str(repo), "--agent", f"coder-{protocol}")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert steps(events) == EXPECTED, events
    assert (repo / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    bash = next(e for e in events if e["type"] == "tool.finished" and e["name"] == "bash")
    assert bash["output"].startswith("exit code 0"), bash
    assert "ok: 2 + 3 == 5" in bash["output"]
    idle = events[-1]
    assert idle["reason"] == "completed"
    assert "ok: 2 + 3 == 5" in idle["answer"]
    session = events[0]["session_id"]

    # A new process resumes the session from the store.
    again = freeway_run(agent_config, "what was wrong?", "--resume", session)
    assert again.returncode == 0, again.stderr
    events = [json.loads(line) for line in again.stdout.splitlines()]
    assert events[0]["session_id"] == session
    assert events[-1]["answer"].startswith("You asked: what was wrong?")


def test_freeway_run_explains_bad_input(agent_config, workspace):
    missing = freeway_run(agent_config, "hi", "--cwd", str(workspace / "nope"))
    assert missing.returncode != 0
    assert "--cwd" in missing.stderr
    unknown = freeway_run(agent_config, "hi", "--cwd", str(workspace), "--agent", "ghost")
    assert unknown.returncode != 0
    assert "no agent named `ghost`" in unknown.stderr
    resume = freeway_run(agent_config, "hi", "--resume", "ses_doesnotexist")
    assert resume.returncode != 0
    assert "ses_doesnotexist" in resume.stderr


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_the_sessions_api_streams_the_turn(agent_base, workspace, protocol):
    make_repo(workspace / f"api-{protocol}")
    created = httpx.post(
        agent_base + "/v1/sessions",
        json={"agent": f"coder-{protocol}", "working_directory": f"api-{protocol}"},
        headers=AUTH,
    )
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    agent = {"freeway_agent": f"coder-{protocol}"}
    steps_before = metric(agent_base, "freeway_agent_steps_total", **agent)
    edits_before = metric(agent_base, "freeway_agent_tool_runs_total", freeway_tool="edit_file", outcome="ok")
    events = []
    with httpx.stream(
        "POST",
        f"{agent_base}/v1/sessions/{sid}/messages",
        json={"content": "fix the failing test"},
        headers=AUTH,
        timeout=60,
    ) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    assert steps(events) == EXPECTED, events
    assert (workspace / f"api-{protocol}" / "calc.py").read_text().endswith("return a + b\n")
    shown = httpx.get(f"{agent_base}/v1/sessions/{sid}", headers=AUTH).json()
    assert shown["usage"]["steps"] == 4
    assert metric(agent_base, "freeway_agent_steps_total", **agent) - steps_before == 4
    edits = metric(agent_base, "freeway_agent_tool_runs_total", freeway_tool="edit_file", outcome="ok")
    assert edits - edits_before == 1
    kinds = [i["kind"] for i in shown["items"]]
    assert kinds.count("message") == 9 and kinds[-1] == "turn"


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_the_openai_client_drives_an_agent(agent_base, workspace, protocol):
    make_repo(workspace / f"sdk-{protocol}")
    client = openai.OpenAI(base_url=agent_base + "/v1", api_key=MASTER_KEY, max_retries=0)
    completion = client.chat.completions.create(
        model=f"agent:coder-{protocol}",
        messages=[{"role": "user", "content": "fix the failing test"}],
        extra_body={"working_directory": f"sdk-{protocol}"},
        timeout=60,
    )
    answer = completion.choices[0].message.content
    assert "ok: 2 + 3 == 5" in answer
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens > 0
    session = completion.model_extra["session_id"]
    assert (workspace / f"sdk-{protocol}" / "calc.py").read_text().endswith("return a + b\n")

    # The same session, streamed.
    stream = client.chat.completions.create(
        model=f"agent:coder-{protocol}",
        messages=[{"role": "user", "content": "what was wrong?"}],
        extra_body={"session_id": session},
        stream=True,
        timeout=60,
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.startswith("You asked: what was wrong?")


def test_agent_errors_are_openai_errors(agent_base):
    client = openai.OpenAI(base_url=agent_base + "/v1", api_key=MASTER_KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(
            model="agent:ghost", messages=[{"role": "user", "content": "hi"}]
        )
    assert "no agent named `ghost`" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="agent:coder-openai",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"working_directory": "../../"},
        )
    assert "working_directory" in str(e.value)
    tools = httpx.get(agent_base + "/v1/tools", headers=AUTH).json()["data"]
    assert {"read_file", "edit_file", "bash", "grep"} <= {t["name"] for t in tools}
    agents = httpx.get(agent_base + "/v1/agents", headers=AUTH).json()["data"]
    assert {"coder-openai", "coder-anthropic", "coder-gemini"} <= {a["name"] for a in agents}


def test_mcp_server_tools_are_discovered(agent_base):
    assert EVERYTHING.exists(), "run `npm ci --prefix tests/mcp`"
    r = httpx.get(f"{agent_base}/v1/tools", headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    echo = next(t for t in body["data"] if t["name"] == "mcp__everything__echo")
    assert echo["source"] == "mcp"
    assert echo["kind"] == "read"
    assert echo["parameters"]["properties"]["message"]["type"] == "string"
    servers = {s["name"]: s for s in body["mcp_servers"]}
    assert servers["everything"]["connected"] is True
    assert servers["everything"]["tools"] == ["mcp__everything__echo", "mcp__everything__get-sum"]
    # A server that cannot start is reported, with why, and freeway serves on without it.
    assert servers["down"]["connected"] is False
    assert "could not be started" in servers["down"]["error"]

    agents = httpx.get(f"{agent_base}/v1/agents", headers=AUTH).json()["data"]
    user = next(a for a in agents if a["name"] == "mcp-user")
    assert user["mcp_servers"] == ["everything", "down"]
    assert "mcp__everything__echo" in user["tools"]
