"""The embedded model through `freeway serve` with no configuration, driven by the openai client."""

import json
import os
import subprocess

import openai
import pytest

from conftest import FREEWAY_BIN, free_port, wait_ready


@pytest.fixture(scope="module")
def local_client(tmp_path_factory):
    port = free_port()
    store = tmp_path_factory.mktemp("local") / "freeway.db"
    env = dict(os.environ, FREEWAY_LOG="warn", NO_COLOR="1", FREEWAY_STORAGE_URL=f"sqlite://{store}")
    env.pop("FREEWAY_CONFIG", None)
    proc = subprocess.Popen([FREEWAY_BIN, "serve", "--listen", f"127.0.0.1:{port}"], env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base + "/healthz", proc, "freeway (embedded model; run scripts/fetch-model.sh if it is missing)")
    yield openai.OpenAI(base_url=base + "/v1", api_key="none", max_retries=0)
    proc.terminate()
    proc.wait(timeout=20)


QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


def test_default_resolves_to_the_embedded_model_and_answers(local_client):
    ids = [m.id for m in local_client.models.list()]
    assert ids == ["local/smollm2"]
    r = local_client.chat.completions.create(model="default", messages=QUESTION, temperature=0, max_tokens=32)
    assert "Paris" in r.choices[0].message.content
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0


def test_stream_equals_non_stream_greedy(local_client):
    whole = local_client.chat.completions.create(model="local/smollm2", messages=QUESTION, temperature=0, max_tokens=24)
    chunks = local_client.chat.completions.create(
        model="local/smollm2", messages=QUESTION, temperature=0, max_tokens=24, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content


def test_json_schema_output_validates(local_client):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
        "additionalProperties": False,
    }
    r = local_client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "Name a city and its country."}],
        response_format={"type": "json_schema", "json_schema": {"name": "place", "schema": schema}},
        temperature=0,
        max_tokens=64,
    )
    data = json.loads(r.choices[0].message.content)
    assert set(data) == {"city", "country"} and all(isinstance(v, str) for v in data.values())


def test_forced_tool_call_is_parsed(local_client):
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
    r = local_client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[tool],
        tool_choice="required",
        temperature=0,
        max_tokens=64,
    )
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)
