"""Structured output on the embedded 135M model, through the official OpenAI SDK: 200 varied prompts and schemas
(nested objects, arrays with item bounds, enums, patterns, bounded numbers, optional and nullable fields), and
every answer parses as JSON and validates against its schema."""

import itertools
import json

import jsonschema
import openai
import pytest

CHAT_MODEL = "smollm2-135m-instruct"

SCHEMAS = {
    "product": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 60},
            "price": {"type": "number", "minimum": 1, "maximum": 5000},
            "in_stock": {"type": "boolean"},
        },
        "required": ["name", "price", "in_stock"],
        "additionalProperties": False,
    },
    "rug": {
        "type": "object",
        "properties": {
            "material": {"enum": ["wool", "jute", "cotton", "polypropylene"]},
            "width_cm": {"type": "integer", "minimum": 60, "maximum": 400},
            "length_cm": {"type": "integer", "minimum": 90, "maximum": 600},
        },
        "required": ["material", "width_cm", "length_cm"],
        "additionalProperties": False,
    },
    "order": {
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "pattern": "^ORD-[0-9]{6}$"},
            "items": {
                "type": "array",
                "minItems": 1,
                "maxItems": 3,
                "items": {
                    "type": "object",
                    "properties": {
                        "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{3}$"},
                        "quantity": {"type": "integer", "minimum": 1, "maximum": 9},
                    },
                    "required": ["sku", "quantity"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["order_id", "items"],
        "additionalProperties": False,
    },
    "person": {
        "type": "object",
        "properties": {
            "first_name": {"type": "string", "minLength": 1, "maxLength": 30},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
            "email": {"type": ["string", "null"], "pattern": "^[a-z0-9.]+@[a-z0-9]+\\.[a-z]{2,4}$"},
        },
        "required": ["first_name", "age", "email"],
        "additionalProperties": False,
    },
    "review": {
        "type": "object",
        "properties": {
            "rating": {"type": "integer", "minimum": 1, "maximum": 5},
            "sentiment": {"enum": ["positive", "neutral", "negative"]},
            "summary": {"type": "string", "maxLength": 80},
        },
        "required": ["rating", "sentiment", "summary"],
        "additionalProperties": False,
    },
    "tags": {
        "type": "object",
        "properties": {
            "tags": {
                "type": "array",
                "items": {"type": "string", "maxLength": 20},
                "minItems": 2,
                "maxItems": 4,
            }
        },
        "required": ["tags"],
        "additionalProperties": False,
    },
    "address": {
        "type": "object",
        "properties": {
            "street": {"type": "string", "maxLength": 50},
            "city": {"type": "string", "maxLength": 30},
            "postcode": {"type": "string", "pattern": "^[0-9]{5}$"},
            "country": {"enum": ["US", "DE", "FR", "GB", "NO"]},
        },
        "required": ["street", "city", "postcode", "country"],
        "additionalProperties": False,
    },
    "room": {
        "type": "object",
        "properties": {
            "room": {"enum": ["dining", "living", "bedroom", "office"]},
            "dimensions": {
                "type": "object",
                "properties": {
                    "width_m": {"type": "number", "minimum": 1.5, "maximum": 12},
                    "depth_m": {"type": "number", "minimum": 1.5, "maximum": 12},
                },
                "required": ["width_m", "depth_m"],
                "additionalProperties": False,
            },
            "budget_usd": {"type": "integer", "minimum": 50, "maximum": 10000},
        },
        "required": ["room", "dimensions", "budget_usd"],
        "additionalProperties": False,
    },
    "answer": {
        "type": "object",
        "properties": {
            "answer": {"type": "integer", "minimum": -1000, "maximum": 1000},
            "confident": {"type": "boolean"},
        },
        "required": ["answer", "confident"],
        "additionalProperties": False,
    },
    "optional_fields": {
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 40},
            "subtitle": {"type": "string", "maxLength": 40},
            "year": {"type": "integer", "minimum": 1900, "maximum": 2030},
        },
        "required": ["title"],
        "additionalProperties": False,
    },
}

PROMPTS = [
    "Describe a green velvet sofa for a small living room.",
    "Give me details for an order of two lamps and a rug.",
    "Tell me about a wool rug for a dining room under $200.",
    "Summarize this review: the chair wobbles but looks great.",
    "Invent a customer profile for our furniture store.",
    "Where should we ship the oak table?",
    "What is 17 times 3?",
    "List a few keywords for a mid-century coffee table.",
    "Plan furniture for a 3 by 4 metre office.",
    "Make up a catalog entry for a bookshelf.",
    "Describe the product in the photo: a blue armchair.",
    "Answer in JSON: how many legs does a stool have?",
    "Fill in the form for a new bed frame listing.",
    "Return the data for a returned order.",
    "Create an example record.",
    "A shopper wants a rug for a hallway. Describe one.",
    "Extract the fields from: Anna, 34, anna@example.com.",
    "Rate this: delivery was late, product fine.",
    "Describe a room makeover on a budget.",
    "Give the details as JSON.",
]

# 10 schemas x 20 prompts = 200 cases; every fourth one samples (temperature 0.8, fixed seed), the rest are greedy.
CASES = [
    (schema_name, prompt, index % 4 == 3)
    for index, (schema_name, prompt) in enumerate(itertools.product(SCHEMAS, PROMPTS))
]
assert len(CASES) == 200


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server["base_url"] + "/v1", api_key="unused-without-a-master-key", max_retries=0)


@pytest.mark.parametrize(("schema_name", "prompt", "sampled"), CASES)
def test_answers_validate_against_their_schema(client, schema_name, prompt, sampled):
    schema = SCHEMAS[schema_name]
    completion = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": prompt}],
        response_format={"type": "json_schema", "json_schema": {"name": schema_name, "schema": schema, "strict": True}},
        max_tokens=400,
        temperature=0.8 if sampled else 0,
        seed=7,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop", choice.message.content
    jsonschema.validate(json.loads(choice.message.content), schema)


@pytest.mark.parametrize("prompt", ["Describe a lamp as JSON.", *PROMPTS[:4]])
def test_json_object_mode_gives_an_object(client, prompt):
    completion = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": prompt}],
        response_format={"type": "json_object"},
        max_tokens=400,
        temperature=0,
    )
    assert completion.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(completion.choices[0].message.content), dict)


def test_a_schema_that_cannot_be_used_is_a_client_error(client):
    with pytest.raises(openai.BadRequestError) as invalid:
        client.chat.completions.create(
            model=CHAT_MODEL,
            messages=[{"role": "user", "content": "Hi"}],
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "no-such-type"}}},
            max_tokens=20,
        )
    assert "schema" in invalid.value.body["message"]


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}


@pytest.mark.parametrize("tool_choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
def test_the_embedded_model_calls_tools_with_valid_arguments(client, tool_choice):
    question = {"role": "user", "content": "What is the weather in Oslo?"}
    first = client.chat.completions.create(
        model=CHAT_MODEL, messages=[question], tools=[WEATHER_TOOL], tool_choice=tool_choice, temperature=0,
        max_tokens=100,
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    # A forced function is called once; `required` may call it for several cities at once.
    assert len(calls) == 1 if isinstance(tool_choice, dict) else 1 <= len(calls) <= 4
    for call in calls:
        assert call.function.name == "get_weather"
        jsonschema.validate(json.loads(call.function.arguments), WEATHER_TOOL["function"]["parameters"])
    assert len({call.id for call in calls}) == len(calls)
    # The results go back as tool messages; with `auto` the model may answer in text or call again, and
    # either way the answer is well-formed.
    results = [{"role": "tool", "tool_call_id": call.id, "content": "12 C, cloudy"} for call in calls]
    second = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[question, choice.message, *results],
        tools=[WEATHER_TOOL],
        temperature=0,
        max_tokens=200,
    )
    answer = second.choices[0]
    # A text answer may run to max_tokens (the 135M model rambles after a tool result); cut off, it is still text.
    assert answer.finish_reason in ("stop", "length", "tool_calls")
    if answer.finish_reason != "tool_calls":
        assert answer.message.content and not answer.message.tool_calls
    else:
        jsonschema.validate(json.loads(answer.message.tool_calls[0].function.arguments),
                            WEATHER_TOOL["function"]["parameters"])


def test_independent_calls_come_together_unless_parallel_calls_are_off(client):
    question = {"role": "user", "content": "What is the weather in Oslo, and in Paris?"}
    for parallel, most in [(None, 4), (False, 1)]:
        extra = {} if parallel is None else {"parallel_tool_calls": parallel}
        response = client.chat.completions.create(
            model=CHAT_MODEL, messages=[question], tools=[WEATHER_TOOL], tool_choice="required", temperature=0,
            max_tokens=160, **extra,
        )
        calls = response.choices[0].message.tool_calls
        assert 1 <= len(calls) <= most, calls
        for call in calls:
            jsonschema.validate(json.loads(call.function.arguments), WEATHER_TOOL["function"]["parameters"])
    # Streamed, each call is its own tool_calls entry with its own index.
    stream = client.chat.completions.create(
        model=CHAT_MODEL, messages=[question], tools=[WEATHER_TOOL], tool_choice="required", temperature=0,
        max_tokens=160, stream=True,
    )
    indexes = {delta.index for chunk in stream for choice in chunk.choices for delta in choice.delta.tool_calls or []}
    assert indexes == set(range(len(indexes))) and indexes
