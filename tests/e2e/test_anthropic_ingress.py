"""The official `anthropic` client against freeway, through every provider protocol."""

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def test_messages(anthropic_client, model):
    r = anthropic_client.messages.create(
        model=model,
        max_tokens=100,
        system="You are terse.",
        messages=[{"role": "user", "content": "hello there"}],
    )
    assert r.content[0].type == "text"
    assert r.content[0].text == "You said: hello there"
    assert r.stop_reason == "end_turn"
    assert r.model == model
    assert r.usage.output_tokens > 0


def test_stream_equals_non_stream(anthropic_client, model):
    kwargs = dict(model=model, max_tokens=100, messages=[{"role": "user", "content": "a few streamed words"}])
    whole = anthropic_client.messages.create(**kwargs)
    with anthropic_client.messages.stream(**kwargs) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == whole.content[0].text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_tool_use_round_trip(anthropic_client, model):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    r = anthropic_client.messages.create(model=model, max_tokens=100, tools=[WEATHER_TOOL], messages=messages)
    assert r.stop_reason == "tool_use"
    use = [b for b in r.content if b.type == "tool_use"][0]
    assert use.name == "get_weather" and use.input == {"city": "Paris"} and use.id

    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in r.content]})
    messages.append(
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18C and sunny"}]}
    )
    r = anthropic_client.messages.create(model=model, max_tokens=100, tools=[WEATHER_TOOL], messages=messages)
    assert r.content[0].text == "The tool said: 18C and sunny"
    assert r.stop_reason == "end_turn"


def test_streamed_tool_use(anthropic_client, model):
    with anthropic_client.messages.stream(
        model=model,
        max_tokens=100,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "weather?"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    use = [b for b in final.content if b.type == "tool_use"][0]
    assert use.name == "get_weather"
    assert use.input == {"city": "Paris"}
