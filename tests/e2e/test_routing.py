"""Routing and resilience through `freeway serve` with the official clients: retries and
fallback counted at the upstream, the circuit breaker seen in /admin/routes, /metrics and
`freeway routes`, complexity routing explained in `x-freeway-route`, and the response cache
(`x-freeway-cache`) for OpenAI- and Anthropic-format clients alike."""

import json
import os
import subprocess
import time
import uuid

import anthropic
import httpx
import openai
import pytest

from conftest import FREEWAY_BIN, MASTER_KEY, start_freeway, write_config

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}

ROUTING = """
[routing]
retries = 1
retry_base_ms = 10
breaker_failures = 3
breaker_cooldown_secs = 1

[[routes]]
name = "flaky"
targets = ["openai/error-500", "claude/steady"]

[[routes]]
name = "tripwire"
targets = ["gemini/error-503", "openai/backup"]

[[routes]]
name = "auto"
strategy = "auto"

[[routes.tiers]]
name = "fast"
targets = ["openai/small-model"]
max_score = 1

[[routes.tiers]]
name = "deep"
targets = ["claude/big-model"]
"""


@pytest.fixture(scope="module")
def server(mock_upstream, tmp_path_factory):
    config = write_config(tmp_path_factory.mktemp("routing"), mock_upstream, ROUTING)
    proc, base = start_freeway(config)
    yield base, config
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def base(server):
    return server[0]


@pytest.fixture(scope="module")
def oai(base):
    return openai.OpenAI(base_url=base + "/v1", api_key=MASTER_KEY, max_retries=0)


@pytest.fixture(scope="module")
def ant(base):
    return anthropic.Anthropic(base_url=base, api_key=MASTER_KEY, max_retries=0)


def calls(mock_upstream, model):
    return httpx.get(mock_upstream + "/_mock/calls").json().get(model, 0)


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def ask(text="hi"):
    return [{"role": "user", "content": text}]


def test_a_retryable_failure_is_retried_once_then_the_next_target_answers(oai, mock_upstream):
    before = calls(mock_upstream, "error-500")
    raw = oai.chat.completions.with_raw_response.create(model="flaky", messages=ask())
    assert raw.headers["x-freeway-target"] == "claude/steady"
    assert raw.parse().choices[0].message.content == "You said: hi"
    assert calls(mock_upstream, "error-500") - before == 2, "one attempt and one retry"


def test_the_breaker_opens_skips_the_target_then_probes_after_the_cool_down(base, oai, ant, mock_upstream):
    def tripwire_circuit():
        doc = httpx.get(base + "/admin/routes", headers=AUTH).json()
        return next(t for t in doc["targets"] if t["target"] == "gemini/error-503")

    assert tripwire_circuit()["circuit"] == "closed"
    before = calls(mock_upstream, "error-503")  # other tests' requests to it count too
    # Two failures (attempt + retry), then the third consecutive failure opens the circuit.
    oai.chat.completions.create(model="tripwire", messages=ask())
    ant.messages.create(model="tripwire", max_tokens=10, messages=ask())
    assert calls(mock_upstream, "error-503") - before == 3
    state = tripwire_circuit()
    assert state["circuit"] == "open" and state["open_for_ms"] > 0, state

    raw = oai.chat.completions.with_raw_response.create(model="tripwire", messages=ask())
    assert raw.headers["x-freeway-target"] == "openai/backup"
    assert calls(mock_upstream, "error-503") - before == 3, "an open circuit costs no upstream call"

    metrics = httpx.get(base + "/metrics", headers=AUTH)
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'freeway_circuit_state{target="gemini/error-503"} 2' in metrics.text
    assert 'freeway_circuit_state{target="openai/backup"} 0' in metrics.text

    time.sleep(1.1)
    oai.chat.completions.create(model="tripwire", messages=ask())
    assert calls(mock_upstream, "error-503") - before == 4, "one probe after the cool-down"
    assert tripwire_circuit()["circuit"] == "open", "the failed probe reopened it"


def test_admin_views_need_the_master_key(base):
    for path in ("/admin/routes", "/metrics"):
        r = httpx.get(base + path)
        assert r.status_code == 401, path


def cli_env():
    env = dict(os.environ, NO_COLOR="1", E2E_MASTER_KEY=MASTER_KEY)
    for name in ("E2E_OPENAI_KEY", "E2E_ANTHROPIC_KEY", "E2E_GEMINI_KEY"):
        env[name] = "unused-by-this-command"
    return env


def test_freeway_routes_prints_the_live_state(server):
    base, config = server
    out = subprocess.run(
        [FREEWAY_BIN, "routes", "--config", str(config), "--url", base, "--key", MASTER_KEY, "--json"],
        capture_output=True, text=True, timeout=30, env=cli_env(),
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["live"] is True
    assert [r["name"] for r in doc["routes"]] == ["resilient", "flaky", "tripwire", "auto"]
    auto = doc["routes"][3]
    assert [t["name"] for t in auto["tiers"]] == ["fast", "deep"]
    assert {t["target"] for t in doc["targets"]} >= {"openai/error-500", "claude/steady"}

    table = subprocess.run(
        [FREEWAY_BIN, "routes", "--config", str(config), "--url", base, "--key", MASTER_KEY],
        capture_output=True, text=True, timeout=30, env=cli_env(),
    )
    assert table.returncode == 0, table.stderr
    assert "ROUTE" in table.stdout and "CIRCUIT" in table.stdout
    assert "fast: openai/small-model | deep: claude/big-model" in table.stdout


def test_auto_routes_explain_their_choice(oai, ant):
    raw = oai.chat.completions.with_raw_response.create(model="auto", messages=ask("What is 2+2?"))
    assert raw.headers["x-freeway-target"] == "openai/small-model"
    assert raw.headers["x-freeway-route"] == "route=auto; tier=fast; score=0"

    hard = "Think step by step and design a plan to refactor this:\n```python\nx = 1\n```"
    raw = ant.messages.with_raw_response.create(model="auto", max_tokens=50, messages=ask(hard))
    assert raw.headers["x-freeway-target"] == "claude/big-model"
    why = raw.headers["x-freeway-route"]
    assert why.startswith("route=auto; tier=deep; score=3"), why
    assert 'reasoning("think")+2' in why and "code+1" in why, why

    raw = oai.chat.completions.with_raw_response.create(
        model="auto", messages=ask("hi"), extra_headers={"x-freeway-tier": "deep"}
    )
    assert raw.headers["x-freeway-target"] == "claude/big-model"
    assert "hint=deep" in raw.headers["x-freeway-route"]


@pytest.mark.parametrize("provider", ["openai", "claude", "gemini"])
def test_a_repeated_deterministic_request_is_served_from_the_cache(oai, mock_upstream, provider):
    model = unique("cached")
    first = oai.chat.completions.with_raw_response.create(
        model=f"{provider}/{model}", messages=ask("cache me"), temperature=0
    )
    assert first.headers["x-freeway-cache"] == "miss"
    time.sleep(0.1)  # the cache is filled off the request path
    second = oai.chat.completions.with_raw_response.create(
        model=f"{provider}/{model}", messages=ask("cache me"), temperature=0
    )
    assert second.headers["x-freeway-cache"] == "hit"
    assert second.headers["x-freeway-target"] == f"{provider}/{model}"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert calls(mock_upstream, model) == 1


def test_a_cached_answer_replays_as_a_stream_in_both_formats(oai, ant, mock_upstream):
    model = "openai/" + unique("replay")
    # anthropic 2.x no longer takes `temperature` as an argument; the API still does.
    zero = {"temperature": 0}
    ant.messages.create(model=model, max_tokens=50, messages=ask("stream me"), extra_body=zero)
    time.sleep(0.1)
    with ant.messages.with_streaming_response.create(
        model=model, max_tokens=50, messages=ask("stream me"), stream=True, extra_body=zero
    ) as raw:
        assert raw.headers["x-freeway-cache"] == "hit"
        assert raw.headers["content-type"].startswith("text/event-stream")
        body = raw.read().decode()
    assert body.startswith("event: message_start") and "event: message_stop" in body
    with ant.messages.stream(model=model, max_tokens=50, messages=ask("stream me"), extra_body=zero) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "You said: stream me"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0
    assert calls(mock_upstream, model.split("/", 1)[1]) == 1

    # The OpenAI format hits the same entry (same model, same request), streamed.
    chunks = list(
        oai.chat.completions.create(
            model=model, max_tokens=50, temperature=0, messages=ask("stream me"), stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert calls(mock_upstream, model.split("/", 1)[1]) == 1


def test_cache_control_no_cache_goes_to_the_upstream_and_use_opts_in(oai, mock_upstream):
    name = unique("fresh")
    model = "openai/" + name
    oai.chat.completions.create(model=model, messages=ask(), temperature=0)
    time.sleep(0.1)
    raw = oai.chat.completions.with_raw_response.create(
        model=model, messages=ask(), temperature=0, extra_headers={"cache-control": "no-cache"}
    )
    assert raw.headers["x-freeway-cache"] == "miss"
    assert calls(mock_upstream, name) == 2

    # A sampled request is not cached unless the client opts in.
    raw = oai.chat.completions.with_raw_response.create(model=model, messages=ask("warm"), temperature=0.7)
    assert "x-freeway-cache" not in raw.headers
    for expected in ("miss", "hit"):
        raw = oai.chat.completions.with_raw_response.create(
            model=model, messages=ask("opted in"), temperature=0.7, extra_headers={"x-freeway-cache": "use"}
        )
        assert raw.headers["x-freeway-cache"] == expected
        time.sleep(0.1)


def test_a_bad_cache_header_is_a_400_in_each_format(oai, ant):
    with pytest.raises(openai.BadRequestError) as e:
        oai.chat.completions.create(model="openai/x", messages=ask(), extra_headers={"x-freeway-cache": "maybe"})
    assert "x-freeway-cache" in e.value.message
    with pytest.raises(anthropic.BadRequestError) as e:
        ant.messages.create(
            model="openai/x", max_tokens=5, messages=ask(), extra_headers={"x-freeway-cache": "maybe"}
        )
    assert e.value.body["error"]["type"] == "invalid_request_error"
