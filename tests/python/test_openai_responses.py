"""The official OpenAI Python SDK's Responses API, unchanged, against flywheel's `/v1/responses`."""

import json
import sqlite3
import time

import openai
import pytest

from conftest import start_flywheel

CHAT_MODEL = "smollm2-135m-instruct"
# A fault deployment that calls the offered tool gives fixed calls and replies, so the Responses translation of
# tool calls is checked exactly; the embedded model's own calls are tested in test_structured_output.py.
TOOL_MODEL = "fault-tools"
CONFIG = """
[[models]]
id = "fault-tools"
[[models.deployments]]
provider = "fault"
fault = { call_tools = true, call_arguments = '{"city": "Oslo"}', reply = "It is 12 C and cloudy in Oslo." }
"""
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def server():
    # A server of its own: other modules count the ledger rows of theirs.
    running = start_flywheel(CONFIG)
    yield next(running)
    next(running, None)


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server["base_url"] + "/v1", api_key="unused-without-a-master-key", max_retries=0)


def test_text_response(client):
    response = client.responses.create(
        model=CHAT_MODEL,
        instructions="Answer briefly.",
        input="What is 2+2?",
        max_output_tokens=32,
        temperature=0,
    )
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status in ("completed", "incomplete")
    assert response.model == CHAT_MODEL
    assert "4" in response.output_text
    assert response.output[0].type == "message"
    assert response.usage.input_tokens > 10
    assert 0 < response.usage.output_tokens <= 32
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens


def test_streamed_response_events(client):
    with client.responses.stream(
        model=CHAT_MODEL,
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Count from one to five."}]}],
        max_output_tokens=30,
        temperature=0,
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) > 1
    assert "".join(deltas) == final.output_text
    done = [event.text for event in events if event.type == "response.output_text.done"]
    assert done == [final.output_text]
    assert final.usage.output_tokens > 0


def test_function_call_round_trip(client):
    question = {"role": "user", "content": "What is the weather in Oslo?"}
    first = client.responses.create(model=TOOL_MODEL, input=[question], tools=[WEATHER_TOOL], tool_choice="required")
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    assert calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Oslo"}
    assert calls[0].call_id
    # The client runs the tool and sends the whole conversation back: calls and their outputs as items.
    conversation = [question, *first.output, {"type": "function_call_output", "call_id": calls[0].call_id,
                                              "output": "12 C, cloudy"}]
    answer = client.responses.create(model=TOOL_MODEL, input=conversation, tools=[WEATHER_TOOL])
    assert answer.output_text == "It is 12 C and cloudy in Oslo."
    assert answer.status == "completed"


def test_streamed_function_call(client):
    with client.responses.stream(
        model=TOOL_MODEL,
        input="Weather in Oslo?",
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "name": "get_weather"},
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    pieces = [event.delta for event in events if event.type == "response.function_call_arguments.delta"]
    assert len(pieces) == 2
    call = final.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert "".join(pieces) == call.arguments
    assert json.loads(call.arguments) == {"city": "Oslo"}


def test_errors_are_openai_errors(client):
    with pytest.raises(openai.NotFoundError) as not_found:
        client.responses.create(model="no-such-model", input="Hi")
    assert not_found.value.body["code"] == "model_not_found"

    with pytest.raises(openai.BadRequestError) as stateful:
        client.responses.create(model=CHAT_MODEL, input="Hi", previous_response_id="resp_123")
    assert stateful.value.body["param"] == "previous_response_id"

    with pytest.raises(openai.BadRequestError) as hosted:
        client.responses.create(model=CHAT_MODEL, input="Hi", tools=[{"type": "web_search"}])
    assert hosted.value.body["param"] == "tools[0].type"

    with pytest.raises(openai.BadRequestError) as unknown:
        client.responses.create(model=CHAT_MODEL, input="Hi", extra_body={"inptu": 1})
    assert "inptu" in unknown.value.body["message"]


def test_responses_are_in_the_ledger(client, server):
    # The ledger is written just after each response: let earlier tests' rows land first.
    time.sleep(0.5)
    before = ledger_rows(server)
    client.responses.create(model=TOOL_MODEL, input="Hi", max_output_tokens=16)
    with client.responses.stream(model=TOOL_MODEL, input="Hi") as stream:
        stream.get_final_response()
    deadline = time.monotonic() + 10
    while len(ledger_rows(server)) < len(before) + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    rows = ledger_rows(server)[len(before):]
    assert rows == [("responses", TOOL_MODEL, "ok"), ("responses", TOOL_MODEL, "ok")]


def ledger_rows(server):
    with sqlite3.connect(f"file:{server['data_dir']}/flywheel.db?mode=ro", uri=True) as db:
        return db.execute("SELECT endpoint, model, status FROM usage_ledger ORDER BY id").fetchall()
