"""The official Anthropic Python SDK, unchanged, against flywheel's Anthropic Messages API (/v1/messages)."""

import anthropic
import pytest

from conftest import start_flywheel

CHAT_MODEL = "smollm2-135m-instruct"
# A fault model (which answers with a fixed reply) takes tools where a test needs a fixed answer.
FAULT_MODEL = "fault-chat"
CONFIG = """
[[models]]
id = "fault-chat"
[[models.deployments]]
provider = "fault"
"""
GREEDY = {"temperature": 0}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def client():
    # A server of its own: the OpenAI SDK tests count the ledger rows of theirs.
    server = start_flywheel(CONFIG)
    address = next(server)
    yield anthropic.Anthropic(base_url=address["base_url"], api_key="unused-without-a-master-key", max_retries=0)
    next(server, None)


def test_message(client):
    message = client.messages.create(
        model=CHAT_MODEL,
        max_tokens=32,
        messages=[{"role": "user", "content": "What is 2+2?"}],
        extra_body=GREEDY,
    )
    assert message.id.startswith("msg_")
    assert message.role == "assistant"
    assert message.model == CHAT_MODEL
    assert message.content[0].type == "text"
    assert "4" in message.content[0].text
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.input_tokens > 10
    assert 0 < message.usage.output_tokens <= 32


def test_system_prompt_and_stop_sequences(client):
    message = client.messages.create(
        model=CHAT_MODEL,
        max_tokens=64,
        system="Always answer in exactly one short sentence.",
        stop_sequences=["\n"],
        messages=[{"role": "user", "content": "Count from one to ten, one number per line."}],
        extra_body=GREEDY,
    )
    assert message.content[0].text.strip()
    assert "\n" not in message.content[0].text


def test_streaming_text(client):
    with client.messages.stream(
        model=CHAT_MODEL,
        max_tokens=30,
        messages=[{"role": "user", "content": "Count from one to five."}],
        extra_body=GREEDY,
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1
    assert "".join(pieces) == final.content[0].text
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert final.usage.input_tokens > 5
    assert final.usage.output_tokens > 0


def test_top_k_samples_among_the_likeliest_tokens(client):
    message = client.messages.create(
        model=CHAT_MODEL,
        max_tokens=16,
        messages=[{"role": "user", "content": "Name a colour."}],
        # This SDK version no longer takes sampling arguments; the API still does.
        extra_body={"top_k": 5, "temperature": 0.8},
    )
    assert message.content[0].text.strip()


def test_count_tokens(client):
    short = client.messages.count_tokens(model=CHAT_MODEL, messages=[{"role": "user", "content": "Hi"}])
    long = client.messages.count_tokens(
        model=CHAT_MODEL,
        system="You are a helpful assistant for a furniture shop.",
        messages=[{"role": "user", "content": "Which sofas do you have in green velvet, and how long is delivery?"}],
    )
    assert 0 < short.input_tokens < long.input_tokens


def test_tool_use_round_trip(client):
    question = {"role": "user", "content": "What is the weather in Oslo?"}
    first = client.messages.create(
        model=FAULT_MODEL, max_tokens=64, tools=[WEATHER_TOOL], tool_choice={"type": "auto"}, messages=[question]
    )
    assert first.content[0].type == "text"
    # The fault model never calls tools, so the client answers a call of its own making.
    conversation = [
        question,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "12 C, cloudy"}]},
    ]
    answer = client.messages.create(model=FAULT_MODEL, max_tokens=64, tools=[WEATHER_TOOL], messages=conversation)
    assert "fault provider" in answer.content[0].text
    assert answer.stop_reason == "end_turn"
    with client.messages.stream(
        model=FAULT_MODEL, max_tokens=64, tools=[WEATHER_TOOL], messages=conversation
    ) as stream:
        streamed = stream.get_final_message()
    assert streamed.content[0].text == answer.content[0].text


def test_the_embedded_model_calls_tools(client):
    called = client.messages.create(
        model=CHAT_MODEL,
        max_tokens=64,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "What is the weather in Oslo?"}],
        extra_body=GREEDY,
    )
    assert called.stop_reason == "tool_use"
    uses = [block for block in called.content if block.type == "tool_use"]
    assert 1 <= len(uses) <= 4
    for use in uses:
        assert use.name == "get_weather"
        assert isinstance(use.input["city"], str)


def test_errors_are_anthropic_errors(client):
    with pytest.raises(anthropic.NotFoundError) as not_found:
        client.messages.create(model="no-such-model", max_tokens=8, messages=[{"role": "user", "content": "Hi"}])
    assert not_found.value.body["error"]["type"] == "not_found_error"
    assert "no-such-model" in not_found.value.body["error"]["message"]

    with pytest.raises(anthropic.BadRequestError) as thinking:
        client.messages.create(
            model=CHAT_MODEL,
            max_tokens=8,
            messages=[{"role": "user", "content": "Hi"}],
            extra_body={"thinking": {"type": "enabled", "budget_tokens": 1024}},
        )
    assert thinking.value.body["error"]["type"] == "invalid_request_error"
    assert "thinking" in thinking.value.body["error"]["message"]

    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="no-such-model", messages=[{"role": "user", "content": "Hi"}])
