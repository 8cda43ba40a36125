"""The official `openai` client against freeway, through every provider protocol."""

import json

import pytest

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_chat(openai_client, model):
    r = openai_client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello there"}]
    )
    assert r.choices[0].message.content == "You said: hello there"
    assert r.choices[0].finish_reason == "stop"
    assert r.model == model
    assert r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_stream_equals_non_stream(openai_client, model):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "stream these few words please"},
    ]
    whole = openai_client.chat.completions.create(model=model, messages=messages)
    chunks = list(
        openai_client.chat.completions.create(
            model=model, messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    # The usage chunk comes last, with no choices.
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_tool_call_round_trip(openai_client, model):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    r = openai_client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert call.id

    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"})
    r = openai_client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])
    assert r.choices[0].message.content == "The tool said: 18C and sunny"
    assert r.choices[0].finish_reason == "stop"


def test_streamed_tool_call_is_reassembled(openai_client, model):
    stream = openai_client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER_TOOL],
        stream=True,
    )
    calls = {}
    finish = None
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        for tc in delta.tool_calls or []:
            slot = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
            if tc.id:
                slot["id"] = tc.id
            if tc.function and tc.function.name:
                slot["name"] = tc.function.name
            if tc.function and tc.function.arguments:
                slot["arguments"] += tc.function.arguments
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert calls[0]["name"] == "get_weather" and calls[0]["id"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}


def test_image_input_reaches_the_provider(openai_client, model):
    r = openai_client.chat.completions.create(
        model=model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "describe"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ],
            }
        ],
    )
    assert r.choices[0].message.content.startswith("You said: describe")


@pytest.mark.parametrize("model", ["openai/text-embedding-3-small", "gemini/text-embedding-004"])
def test_embeddings_float_and_base64(openai_client, model):
    r = openai_client.embeddings.create(model=model, input=["one", "two"])  # client asks base64
    assert len(r.data) == 2 and len(r.data[0].embedding) > 0
    f = openai_client.embeddings.create(model=model, input="one", encoding_format="float")
    assert f.data[0].embedding == pytest.approx(r.data[0].embedding)


def test_fallback_route_serves_from_the_next_target(freeway, openai_client):
    raw = openai_client.chat.completions.with_raw_response.create(
        model="resilient", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-freeway-target"] == "claude/claude-sonnet-4-5"
    assert raw.parse().choices[0].message.content == "You said: hi"


def test_models_lists_routes_configured_and_discovered(openai_client):
    ids = {m.id for m in openai_client.models.list()}
    assert "resilient" in ids
    assert "badkey/claude-x" in ids
    # Discovered from each upstream's model list.
    assert any(i.startswith("openai/") for i in ids)
    assert any(i.startswith("gemini/") for i in ids)
    assert openai_client.models.retrieve("openai/gpt-4o-mini").id == "openai/gpt-4o-mini"
