"""POST /v1/exec and GET /v1/exec/languages against a running `freeway serve`."""

import subprocess

import httpx
import pytest

from conftest import MASTER_KEY, metric, start_freeway, write_config

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return tmp_path_factory.mktemp("exec-workspace")


@pytest.fixture(scope="module")
def exec_base(mock_upstream, tmp_path_factory, workspace):
    sandbox = f"""
[sandbox]
workspace = "{workspace}"
default_timeout_ms = 10000
analysis_model = "openai/gpt-4o-mini"

[[sandbox.rules]]
name = "no-git-push"
action = "deny"
prefix = ["git", "push"]
reason = "pushing is for humans"
"""
    config = write_config(tmp_path_factory.mktemp("exec"), mock_upstream, sandbox)
    proc, base = start_freeway(config)
    yield base
    proc.terminate()
    try:
        proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def run(base, body, headers=AUTH):
    return httpx.post(base + "/v1/exec", json=body, headers=headers, timeout=30)


def test_a_command_runs_with_the_contract_fields(exec_base):
    ok = metric(exec_base, "freeway_exec_runs_total", outcome="ok")
    r = run(exec_base, {"kind": "command", "command": ["sh", "-c", "echo hello; echo warn >&2"]})
    assert r.status_code == 200, r.text
    body = r.json()
    for field in ("exit_code", "signal", "stdout", "stderr", "duration_ms", "timed_out",
                  "truncated", "max_rss_kb", "cpu_ms", "diagnosis", "analysis"):
        assert field in body, field
    assert body["exit_code"] == 0
    assert body["stdout"] == "hello\n"
    assert body["stderr"] == "warn\n"
    assert body["diagnosis"] is None
    assert metric(exec_base, "freeway_exec_runs_total", outcome="ok") - ok == 1


def test_a_python_snippet_runs(exec_base):
    r = run(exec_base, {"kind": "code", "language": "python", "source": "import sys\nprint(sum(range(10)))\nsys.exit(3)"})
    assert r.status_code == 200, r.text
    assert r.json()["stdout"] == "45\n"
    assert r.json()["exit_code"] == 3


def test_a_missing_module_is_diagnosed_and_the_model_answer_is_checked(exec_base):
    r = run(exec_base, {"kind": "code", "language": "python", "source": "import nosuchmodule", "analyze": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["diagnosis"]["category"] == "missing_module"
    assert any("pip install nosuchmodule" in s for s in body["diagnosis"]["suggestions"])
    # The mock upstream answers prose, not the analysis JSON: no fake analysis, a reason instead.
    assert body["analysis"] is None
    assert body["analysis_error"]["code"] == "analysis_invalid_answer"
    assert body["analysis_error"]["model"] == "openai/gpt-4o-mini"


def test_a_denied_command_is_403_with_the_rule(exec_base):
    denied = metric(exec_base, "freeway_exec_runs_total", outcome="denied")
    r = run(exec_base, {"kind": "command", "command": "git push origin main"})
    assert r.status_code == 403, r.text
    assert metric(exec_base, "freeway_exec_runs_total", outcome="denied") - denied == 1
    error = r.json()["error"]
    assert error["type"] == "permission_error"
    assert error["rule"] == "no-git-push"
    assert error["reason"] == "pushing is for humans"


def test_writes_stay_in_the_workspace(exec_base, workspace, tmp_path):
    outside = tmp_path / "escaped"
    r = run(exec_base, {"kind": "command", "command": f"echo x > {outside}"})
    assert r.status_code == 200, r.text
    assert r.json()["exit_code"] != 0
    assert not outside.exists()
    r = run(exec_base, {"kind": "command", "command": "echo x > inside.txt"})
    assert r.json()["exit_code"] == 0
    assert (workspace / "inside.txt").read_text() == "x\n"


def test_bad_input_and_missing_auth(exec_base):
    r = run(exec_base, {"kind": "code", "source": "print(1)"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "language"
    r = run(exec_base, {"kind": "command", "command": "true"}, headers={})
    assert r.status_code == 401


def test_languages_are_listed(exec_base):
    r = httpx.get(exec_base + "/v1/exec/languages", headers=AUTH)
    assert r.status_code == 200
    python = next(l for l in r.json()["data"] if l["language"] == "python")
    assert python["available"] is True


def test_streaming_sends_output_then_the_result(exec_base):
    with httpx.stream("POST", exec_base + "/v1/exec", headers=AUTH, timeout=30,
                      json={"kind": "command", "command": "echo one; sleep 0.2; echo two", "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        text = r.read().decode()
    assert "event: output" in text
    assert text.rstrip().split("\n\n")[-1].startswith("event: result")
