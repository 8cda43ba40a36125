"""What operators see: /metrics after known traffic (read with the official Prometheus
parser), /readyz, `x-request-id`, and the access log (one line per request, JSON on demand,
never a secret)."""

import json
import math
import time

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import MASTER_KEY, OPENAI_KEY, start_freeway, write_config

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}

EXTRA = """
[routing]
retries = 1
retry_base_ms = 10

[[routes]]
name = "flaky"
targets = ["openai/error-500", "claude/steady"]

[[prices]]
model = "openai/gpt-4o-mini"
input = 1000000.0
output = 2000000.0

[telemetry]
log_format = "json"
"""


@pytest.fixture(scope="module")
def server(mock_upstream, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("observability")
    config = write_config(tmp, mock_upstream, EXTRA)
    log = open(tmp / "stderr.log", "w+")
    proc, base = start_freeway(config, {"FREEWAY_LOG": "info"}, stderr=log)
    yield base, tmp / "stderr.log"
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


@pytest.fixture(scope="module")
def base(server):
    return server[0]


@pytest.fixture(scope="module")
def oai(base):
    return openai.OpenAI(base_url=base + "/v1", api_key=MASTER_KEY, max_retries=0)


def scrape(base):
    r = httpx.get(base + "/metrics", headers=AUTH)
    assert r.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    """The sum over every series of `name` whose labels include `labels`."""
    total = 0.0
    for (n, ls), v in samples.items():
        if n == name and set(labels.items()) <= set(ls):
            total += v
    return total


def ask(text="hello there"):
    return [{"role": "user", "content": text}]


def test_metrics_count_known_traffic(base, oai):
    before = scrape(base)
    usages = []
    for _ in range(3):
        r = oai.chat.completions.create(model="openai/gpt-4o-mini", messages=ask())
        usages.append((r.usage.prompt_tokens, r.usage.completion_tokens))
    for _ in range(2):
        stream = oai.chat.completions.create(
            model="openai/gpt-4o-mini", messages=ask(), stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        u = chunks[-1].usage
        usages.append((u.prompt_tokens, u.completion_tokens))
    # error-500 fails, is retried once, then the route falls back to claude/steady.
    raw = oai.chat.completions.with_raw_response.create(model="flaky", messages=ask())
    assert raw.headers["x-freeway-target"] == "claude/steady"
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="nobody/knows", messages=ask())
    after = scrape(base)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    http = "http_server_request_duration_seconds_count"
    chat = {"http_route": "/v1/chat/completions", "http_request_method": "POST"}
    assert delta(http, **chat, http_response_status_code="200") == 6
    assert delta(http, **chat, http_response_status_code="404") == 1

    target = {"freeway_target": "openai/gpt-4o-mini"}
    ops = "gen_ai_client_operation_duration_seconds_count"
    assert delta(ops, **target, error_type="", gen_ai_operation_name="chat",
                 gen_ai_provider_name="openai", gen_ai_request_model="gpt-4o-mini") == 5
    assert delta("gen_ai_server_time_to_first_token_seconds_count", **target) == 2

    tokens = "gen_ai_client_token_usage_sum"
    sent = sum(u[0] for u in usages)
    got = sum(u[1] for u in usages)
    assert delta(tokens, **target, gen_ai_token_type="input") == sent
    assert delta(tokens, **target, gen_ai_token_type="output") == got
    assert delta("gen_ai_client_token_usage_count", **target, gen_ai_token_type="input") == 5
    # $1 per input token and $2 per output token, as configured above.
    assert math.isclose(delta("freeway_cost_usd_total", **target), sent + 2 * got)

    failed = {"freeway_target": "openai/error-500"}
    assert delta(ops, **failed) == 2
    assert delta(ops, **failed, error_type="") == 0
    assert delta("freeway_retries_total", **failed) == 1
    assert delta("freeway_fallbacks_total", freeway_from_target="openai/error-500",
                 freeway_to_target="claude/steady") == 1
    assert delta(ops, freeway_target="claude/steady", gen_ai_provider_name="anthropic") == 1

    # The circuit gauges are still there beside the new families.
    assert ("freeway_circuit_state", (("target", "openai/error-500"),)) in after


def test_open_streams_are_counted_until_they_end(base):
    route = {"http_route": "/v1/chat/completions"}
    ops = "gen_ai_client_operation_duration_seconds_count"
    cancelled = {"freeway_target": "openai/hang-midstream", "error_type": "cancelled"}
    before = value(scrape(base), ops, **cancelled)
    body = {"model": "openai/hang-midstream", "messages": ask(), "stream": True}
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", base + "/v1/chat/completions", json=body, headers=AUTH) as r:
            assert r.status_code == 200
            # One iterator for the whole stream: a discarded one closes the response.
            lines = r.iter_lines()
            next(lines)
            assert value(scrape(base), "freeway_active_streams", **route) == 1
    deadline = time.monotonic() + 5
    while value(scrape(base), "freeway_active_streams", **route) != 0:
        assert time.monotonic() < deadline, "the stream was never counted as closed"
        time.sleep(0.05)
    # The call the client walked away from is counted as cancelled, not as a success.
    assert value(scrape(base), ops, **cancelled) == before + 1


def test_every_response_has_a_request_id(base, oai):
    raw = oai.chat.completions.with_raw_response.create(model="openai/gpt-4o-mini", messages=ask())
    assert raw.headers["x-request-id"].startswith("req_")
    r = httpx.get(base + "/v1/models", headers=AUTH)
    assert r.headers["x-request-id"].startswith("req_")
    assert httpx.get(base + "/v1/nowhere").headers["x-request-id"].startswith("req_")


def test_readyz_reports_store_and_providers(base):
    r = httpx.get(base + "/readyz")
    assert r.status_code == 200
    doc = r.json()
    assert doc["status"] == "ready"
    assert doc["store"] == "ok"
    assert doc["providers"] >= 3


def test_access_log_is_json_one_line_per_request_and_keeps_secrets(server, oai):
    base, log = server
    raw = oai.chat.completions.with_raw_response.create(model="openai/gpt-4o-mini", messages=ask("log me"))
    request_id = raw.headers["x-request-id"]
    deadline = time.monotonic() + 5
    line = None
    while line is None and time.monotonic() < deadline:
        for text in log.read_text().splitlines():
            if request_id in text:
                line = json.loads(text)
        time.sleep(0.05)
    assert line is not None, "no access log line for the request"
    assert line["target"] == "freeway::access"
    assert line["route"] == "/v1/chat/completions"
    assert line["status"] == 200
    assert line["method"] == "POST"
    assert line["duration_ms"] > 0
    everything = log.read_text()
    for secret in (MASTER_KEY, OPENAI_KEY, "log me"):
        assert secret not in everything
