"""Virtual keys, roles, limits and budgets as the official clients see them.

Keys are made through the admin API; then the `openai` and `anthropic` packages use them as
their API key and get the errors they know how to handle.
"""

import sqlite3

import anthropic
import httpx
import openai
import pytest

from conftest import MASTER_KEY, MODELS, start_freeway, write_config


@pytest.fixture(scope="module")
def server(mock_upstream, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tenancy")
    config = write_config(tmp, mock_upstream)
    proc, base = start_freeway(config)
    yield base, tmp / "freeway.db"
    proc.terminate()
    proc.wait(timeout=10)


def admin(base, method, path, body=None, key=MASTER_KEY):
    r = httpx.request(method, base + path, json=body, headers={"authorization": f"Bearer {key}"}, timeout=10)
    return r


def make_key(base, team, **fields):
    r = admin(base, "POST", "/admin/teams", {"name": team})
    assert r.status_code in (201, 409), r.text
    r = admin(base, "POST", "/admin/keys", {"team": team, "role": "developer", **fields})
    assert r.status_code == 201, r.text
    return r.json()


def test_a_virtual_key_works_in_both_clients_and_is_stored_hashed(server):
    base, db = server
    key = make_key(base, "e2e-alpha", name="laptop")
    secret = key["key"]
    oa = openai.OpenAI(base_url=base + "/v1", api_key=secret, max_retries=0)
    r = oa.chat.completions.create(model=MODELS["openai"], messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content
    an = anthropic.Anthropic(base_url=base, api_key=secret, max_retries=0)
    m = an.messages.create(model=MODELS["anthropic"], max_tokens=32, messages=[{"role": "user", "content": "hi"}])
    assert m.content[0].text

    # The database holds a hash, never the secret.
    with sqlite3.connect(db) as conn:
        dump = "\n".join(conn.iterdump())
    assert secret not in dump and secret[3:] not in dump
    assert key["prefix"] in dump

    usage = admin(base, "GET", "/admin/usage?group_by=key").json()
    mine = [row for row in usage["data"] if row["group"] == key["id"]]
    assert mine and mine[0]["requests"] == 2, usage


def test_rate_limits_reach_the_client_as_rate_limit_errors(server):
    base, _ = server
    key = make_key(base, "e2e-beta", rpm=1)
    oa = openai.OpenAI(base_url=base + "/v1", api_key=key["key"], max_retries=0)
    raw = oa.chat.completions.with_raw_response.create(model=MODELS["openai"], messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-ratelimit-limit-requests"] == "1"
    with pytest.raises(openai.RateLimitError) as e:
        oa.chat.completions.create(model=MODELS["openai"], messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["type"] == "rate_limit_exceeded"
    assert e.value.response.headers["retry-after"]


def test_a_spent_budget_is_a_budget_exceeded_error(server):
    base, _ = server
    key = make_key(base, "e2e-gamma", budget_usd=0.000000001)
    an = anthropic.Anthropic(base_url=base, api_key=key["key"], max_retries=0)
    an.messages.create(model=MODELS["anthropic"], max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.RateLimitError) as e:
        an.messages.create(model=MODELS["anthropic"], max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["error"]["type"] == "budget_exceeded"


def test_a_revoked_key_is_an_authentication_error(server):
    base, _ = server
    key = make_key(base, "e2e-delta")
    assert admin(base, "DELETE", f"/admin/keys/{key['id']}").status_code == 200
    oa = openai.OpenAI(base_url=base + "/v1", api_key=key["key"], max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        oa.models.list()


def test_the_audit_chain_verifies(server):
    base, _ = server
    make_key(base, "e2e-epsilon")
    v = admin(base, "GET", "/admin/audit/verify").json()
    assert v["ok"] is True and v["entries"] >= 2, v
