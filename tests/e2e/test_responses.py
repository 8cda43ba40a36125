"""The official `openai` client's Responses API against freeway, through every provider protocol."""

import json

import openai
import pytest

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


def test_create(openai_client, model):
    r = openai_client.responses.create(
        model=model,
        instructions="Be brief.",
        input="hello there",
        metadata={"case": "create"},
    )
    assert r.id.startswith("resp_")
    assert r.object == "response"
    assert r.status == "completed"
    assert r.model == model
    assert r.output_text == "You said: hello there"
    message = r.output[0]
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "output_text"
    assert r.instructions == "Be brief."
    assert r.metadata == {"case": "create"}
    assert r.usage.output_tokens > 0
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert r.store is True


def test_stream(openai_client, model):
    whole = openai_client.responses.create(model=model, input="stream these few words please")
    with openai_client.responses.stream(model=model, input="stream these few words please") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1
    assert "".join(deltas) == whole.output_text
    assert final.output_text == whole.output_text
    assert final.usage.output_tokens > 0
    # Stored as streamed.
    back = openai_client.responses.retrieve(final.id)
    assert back.output_text == final.output_text
    assert back.status == "completed"


def test_raw_stream_events(openai_client, model):
    stream = openai_client.responses.create(model=model, input="raw events", stream=True)
    events = list(stream)
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    assert events[-1].response.output[0].content[0].text == "You said: raw events"


def test_function_call_round_trip(openai_client, model):
    history = [{"role": "user", "content": "What is the weather in Paris?"}]
    r = openai_client.responses.create(model=model, input=history, tools=[WEATHER_TOOL])
    calls = [o for o in r.output if o.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert call.call_id and call.id.startswith("fc_")
    assert r.tools[0].name == "get_weather"

    history += [o.model_dump(exclude_none=True) for o in r.output]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "18C and sunny"})
    r = openai_client.responses.create(model=model, input=history, tools=[WEATHER_TOOL], store=False)
    assert r.output_text == "The tool said: 18C and sunny"
    assert r.store is False


def test_streamed_function_call(openai_client, model):
    with openai_client.responses.stream(
        model=model, input="weather?", tools=[WEATHER_TOOL], tool_choice="required"
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds
    assert kinds.index("response.function_call_arguments.done") < kinds.index("response.output_item.done")
    call = final.output[0]
    assert call.type == "function_call"
    assert json.loads(call.arguments) == {"city": "Paris"}


PATCH_TOOL = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files with a patch.",
    "format": {"type": "grammar", "syntax": "lark", "definition": 'start: "*** Begin Patch" /(.|\\n)*/'},
}


def test_custom_tool_round_trip(openai_client, model):
    """Codex CLI's freeform tools run on any provider as a function taking one string."""
    history = [{"role": "user", "content": "Fix the bug."}]
    r = openai_client.responses.create(model=model, input=history, tools=[PATCH_TOOL])
    call = r.output[0]
    assert call.type == "custom_tool_call", r.output
    assert call.name == "apply_patch" and call.call_id
    assert isinstance(call.input, str) and call.input and not call.input.startswith("{")
    assert r.tools[0].type == "custom"

    history += [o.model_dump(exclude_none=True) for o in r.output]
    history.append({"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Done!"})
    r = openai_client.responses.create(model=model, input=history, tools=[PATCH_TOOL], store=False)
    assert r.output_text == "The tool said: Done!"

    with openai_client.responses.stream(model=model, input="Fix it.", tools=[PATCH_TOOL]) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.custom_tool_call_input.done" in kinds
    assert "response.function_call_arguments.delta" not in kinds
    assert final.output[0].type == "custom_tool_call"
    assert final.output[0].input == call.input


def test_namespace_tools_are_called_by_their_declared_name(openai_client, model):
    """Codex CLI's tool namespaces: flattened for the provider, named back as declared."""
    tools = [{"type": "namespace", "name": "weather", "description": "Weather tools", "tools": [
        {**{k: v for k, v in WEATHER_TOOL.items() if k != "strict"}, "name": "current"},
    ]}]
    r = openai_client.responses.create(model=model, input="weather in Paris?", tools=tools, store=False)
    call = r.output[0].model_dump()
    assert call["type"] == "function_call"
    assert (call["namespace"], call["name"]) == ("weather", "current"), call
    follow = openai_client.responses.create(
        model=model,
        input=[{"role": "user", "content": "weather in Paris?"}, call,
               {"type": "function_call_output", "call_id": call["call_id"], "output": "18C"}],
        tools=tools,
        store=False,
    )
    assert follow.output_text == "The tool said: 18C"


def test_previous_response_id_continues(openai_client, model):
    first = openai_client.responses.create(model=model, input="My name is Ada")
    assert first.output_text == "You said: My name is Ada"
    fresh = openai_client.responses.create(model=model, input="What is my name?", store=False)
    cont = openai_client.responses.create(
        model=model, input="What is my name?", previous_response_id=first.id
    )
    assert cont.previous_response_id == first.id
    assert cont.output_text == "You said: What is my name?"
    # The mock counts the words it was sent: the earlier exchange came along.
    assert cont.usage.input_tokens == fresh.usage.input_tokens + first.usage.input_tokens + first.usage.output_tokens


def test_function_call_output_after_previous_response_id(openai_client, model):
    first = openai_client.responses.create(model=model, input="Weather in Paris?", tools=[WEATHER_TOOL])
    call = first.output[0]
    assert call.type == "function_call"
    r = openai_client.responses.create(
        model=model,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "rain"}],
        tools=[WEATHER_TOOL],
    )
    assert r.output_text == "The tool said: rain"


def test_retrieve_and_delete(openai_client, model):
    r = openai_client.responses.create(model=model, input="keep me")
    back = openai_client.responses.retrieve(r.id)
    assert back.id == r.id
    assert back.output_text == "You said: keep me"
    assert back.usage.total_tokens == r.usage.total_tokens
    openai_client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.retrieve(r.id)


def test_input_items_list_the_request_input(openai_client, model):
    first = openai_client.responses.create(model=model, input="My name is Ada")
    items = openai_client.responses.input_items.list(first.id)
    assert [(i.type, i.role) for i in items.data] == [("message", "user")]
    assert items.data[0].content[0].text == "My name is Ada"
    assert items.data[0].id.startswith("msg_")

    turns = [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "three"}]},
    ]
    r = openai_client.responses.create(model=model, input=turns, previous_response_id=first.id)
    newest_first = openai_client.responses.input_items.list(r.id)
    # Only this request's input: the earlier turns are `first`'s items.
    assert [i.content[0].text for i in newest_first.data] == ["three", "two", "one"]
    assert newest_first.data[1].content[0].type == "output_text"

    # The client walks the pages with `after`.
    pages = openai_client.responses.input_items.list(r.id, order="asc", limit=2)
    assert [i.content[0].text for i in pages] == ["one", "two", "three"]
    page = openai_client.responses.input_items.list(r.id, order="asc", limit=2)
    assert page.has_more and page.last_id == page.data[1].id

    with pytest.raises(openai.BadRequestError) as e:
        openai_client.responses.input_items.list(r.id, limit=500)
    assert e.value.body["param"] == "limit"
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.input_items.list("resp_doesnotexist")


def test_json_schema(openai_client, model):
    fmt = {
        "type": "json_schema",
        "name": "answer",
        "schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        "strict": True,
    }
    if model.startswith("claude/"):
        # The anthropic protocol has no structured output: refused, never answered in prose.
        with pytest.raises(openai.BadRequestError) as e:
            openai_client.responses.create(model=model, input="x", text={"format": fmt})
        assert "anthropic" in e.value.message
        return
    r = openai_client.responses.create(model=model, input="x", text={"format": fmt})
    assert r.status == "completed"
    assert r.text.format.type == "json_schema"
    assert r.text.format.name == "answer"


def test_max_output_tokens_is_passed(openai_client, model):
    r = openai_client.responses.create(model=model, input="short", max_output_tokens=16)
    assert r.max_output_tokens == 16


def test_hosted_tools_are_refused(openai_client):
    for tool in ({"type": "web_search"}, {"type": "file_search", "vector_store_ids": ["vs_1"]}):
        with pytest.raises(openai.BadRequestError) as e:
            openai_client.responses.create(model="openai/gpt-4o-mini", input="x", tools=[tool])
        assert e.value.status_code == 400
        assert tool["type"] in e.value.message
        assert "only function tools" in e.value.message
        assert e.value.body["type"] == "invalid_request_error"
        assert e.value.body["param"] == "tools[0].type"


def test_bad_requests_are_400(openai_client):
    with pytest.raises(openai.BadRequestError) as e:
        openai_client.responses.create(model="openai/gpt-4o-mini", input="x", background=True)
    assert e.value.body["param"] == "background"
    with pytest.raises(openai.BadRequestError) as e:
        openai_client.responses.create(
            model="openai/gpt-4o-mini", input="x", previous_response_id="resp_doesnotexist"
        )
    assert e.value.body["code"] == "previous_response_not_found"
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.retrieve("resp_doesnotexist")


def test_upstream_errors_keep_their_status(openai_client):
    with pytest.raises(openai.RateLimitError):
        openai_client.responses.create(model="openai/error-429", input="x")
