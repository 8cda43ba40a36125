"""Bad input and failing upstreams: the right status, the right envelope, nothing leaked."""

import anthropic
import httpx
import openai
import pytest

from conftest import MASTER_KEY


def test_unknown_model_is_404_model_not_found(openai_client, anthropic_client):
    with pytest.raises(openai.NotFoundError) as e:
        openai_client.chat.completions.create(model="nope/x", messages=[{"role": "user", "content": "hi"}])
    assert e.value.code == "model_not_found"
    with pytest.raises(anthropic.NotFoundError) as e:
        anthropic_client.messages.create(model="nope/x", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["error"]["type"] == "not_found_error"


def test_missing_or_wrong_key_is_401(freeway):
    bad = openai.OpenAI(base_url=freeway + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    bad = anthropic.Anthropic(base_url=freeway, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="default", max_tokens=5, messages=[{"role": "user", "content": "x"}])


def post(freeway, path, content, headers=None):
    h = {"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"}
    h.update(headers or {})
    return httpx.post(freeway + path, content=content, headers=h, timeout=10)


def test_malformed_json_is_400_in_each_format(freeway):
    r = post(freeway, "/v1/chat/completions", b"{not json")
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = post(freeway, "/v1/messages", b"{not json")
    assert r.status_code == 400 and r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_schema_violations_name_the_field(freeway):
    r = post(freeway, "/v1/chat/completions", b'{"model": "openai/m", "messages": [{"role": "user", "content": 5}]}')
    assert r.status_code == 400
    assert "messages[0].content" in r.json()["error"]["message"]
    r = post(freeway, "/v1/chat/completions", b'{"model": "openai/m", "messages": "hi"}')
    assert r.status_code == 400 and "messages" in r.json()["error"]["message"]
    r = post(freeway, "/v1/messages", b'{"model": "claude/m", "messages": [{"role": "user", "content": "x"}]}')
    assert r.status_code == 400 and "max_tokens" in r.json()["error"]["message"]


def test_oversized_body_is_413(freeway):
    big = b'{"model": "openai/m", "messages": [{"role": "user", "content": "' + b"x" * 70000 + b'"}]}'
    r = post(freeway, "/v1/chat/completions", big)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"


def test_upstream_auth_failure_is_502_naming_the_provider_without_the_key(openai_client):
    with pytest.raises(openai.APIStatusError) as e:
        openai_client.chat.completions.create(model="badkey/claude-x", messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 502
    assert "badkey" in e.value.message
    assert "DO-NOT-LEAK" not in e.value.response.text


@pytest.mark.parametrize("provider", ["openai", "claude", "gemini"])
def test_upstream_rate_limit_is_429_with_retry_after(openai_client, provider):
    with pytest.raises(openai.RateLimitError) as e:
        openai_client.chat.completions.create(model=f"{provider}/error-429", messages=[{"role": "user", "content": "hi"}])
    assert e.value.response.headers["retry-after"] == "1"


def test_upstream_timeout_is_504(mock_upstream, tmp_path):
    from conftest import start_freeway, write_config

    config = write_config(tmp_path, mock_upstream)
    text = config.read_text().replace(
        'name = "claude"\nprotocol = "anthropic"',
        'name = "claude"\nprotocol = "anthropic"\nfirst_byte_timeout_secs = 0.3',
    )
    config.write_text(text)
    proc, base = start_freeway(config)
    try:
        client = anthropic.Anthropic(base_url=base, api_key=MASTER_KEY, max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as e:
            client.messages.create(model="claude/slow-3000", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        assert e.value.status_code == 504
        assert e.value.body["error"]["type"] == "timeout_error"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_failure_mid_stream_ends_with_an_error_event(anthropic_client, openai_client):
    with pytest.raises(anthropic.APIError):
        with anthropic_client.messages.stream(
            model="openai/hang-midstream", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        ) as s:
            for _ in s:
                pass


def test_unknown_route_and_method(freeway):
    r = httpx.get(freeway + "/v1/nothing", headers={"authorization": f"Bearer {MASTER_KEY}"})
    assert r.status_code == 404 and "error" in r.json()
    r = httpx.get(freeway + "/v1/chat/completions", headers={"authorization": f"Bearer {MASTER_KEY}"})
    assert r.status_code == 405
