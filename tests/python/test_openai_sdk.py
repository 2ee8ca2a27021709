"""The official OpenAI Python SDK, unchanged, against flywheel's OpenAI-compatible API."""

import base64
import sqlite3
import struct
import time

import openai
import pytest

CHAT_MODEL = "smollm2-135m-instruct"
EMBEDDING_MODEL = "all-minilm-l6-v2"


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server["base_url"] + "/v1", api_key="unused-without-a-master-key", max_retries=0)


def test_lists_the_embedded_models(client):
    ids = {model.id for model in client.models.list()}
    assert {CHAT_MODEL, EMBEDDING_MODEL} <= ids


def test_chat_completion(client):
    def ask():
        return client.chat.completions.create(
            model=CHAT_MODEL,
            messages=[{"role": "user", "content": "What is 2+2?"}],
            temperature=0,
            max_tokens=32,
        )

    completion = ask()
    choice = completion.choices[0]
    assert "4" in choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage.prompt_tokens > 10
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    # Greedy decoding is deterministic.
    assert ask().choices[0].message.content == choice.message.content


def test_system_prompt_is_used(client):
    completion = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[
            {"role": "system", "content": "Always answer in exactly one short sentence."},
            {"role": "user", "content": "What is 2+2?"},
        ],
        temperature=0,
        max_tokens=32,
    )
    with_system = completion.usage.prompt_tokens
    without_system = client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "What is 2+2?"}], max_tokens=1
    ).usage.prompt_tokens
    assert with_system != without_system
    assert completion.choices[0].message.content.strip()


def test_streamed_chat_completion_with_usage(client):
    stream = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "Count from one to five."}],
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=30,
        temperature=0.2,
        top_p=0.9,
        seed=42,
    )
    pieces, finish_reasons, usage = [], [], None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish_reasons.append(choice.finish_reason)
    assert len(pieces) > 1, "the answer should arrive in several chunks"
    assert "".join(pieces).strip()
    assert finish_reasons and finish_reasons[-1] in ("stop", "length")
    assert usage is not None and 1 <= usage.completion_tokens <= 30


def test_stop_sequence(client):
    completion = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "List the numbers 1, 2, 3, 4, 5 separated by commas."}],
        temperature=0,
        max_tokens=40,
        stop=["3"],
    )
    assert "3" not in completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"


def test_embeddings_float_and_base64(client):
    result = client.embeddings.create(model=EMBEDDING_MODEL, input=["a velvet sofa", "a leather couch", "a desk lamp"])
    vectors = [item.embedding for item in result.data]
    assert [len(v) for v in vectors] == [384, 384, 384]
    cosine = lambda a, b: sum(x * y for x, y in zip(a, b))
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    assert result.usage.prompt_tokens > 3

    # The SDK asks for base64 by default when the caller does not say, and decodes it itself.
    raw = client.embeddings.with_raw_response.create(model=EMBEDDING_MODEL, input="a velvet sofa", encoding_format="base64")
    encoded = raw.http_response.json()["data"][0]["embedding"]
    decoded = struct.unpack("<384f", base64.b64decode(encoded))
    assert max(abs(a - b) for a, b in zip(decoded, vectors[0])) < 1e-5


def test_errors_are_openai_errors(client):
    with pytest.raises(openai.NotFoundError) as not_found:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert not_found.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": "lorem ipsum " * 3000}]
        )
    assert too_long.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=CHAT_MODEL, messages=[])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=0)


def test_every_call_is_in_the_ledger(client, server):
    # The ledger is written just after each response: let earlier tests' rows land first.
    time.sleep(0.5)
    before = _ledger_rows(server)
    client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    client.embeddings.create(model=EMBEDDING_MODEL, input="hello")
    deadline = time.monotonic() + 10
    while len(_ledger_rows(server)) < len(before) + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    rows = _ledger_rows(server)[len(before):]
    assert [(r[0], r[1], r[4]) for r in rows] == [
        ("public", CHAT_MODEL, "ok"),
        ("public", EMBEDDING_MODEL, "ok"),
    ]
    assert rows[0][2] > 0 and rows[0][3] > 0


def _ledger_rows(server):
    with sqlite3.connect(f"file:{server['data_dir']}/flywheel.db?mode=ro", uri=True) as db:
        return db.execute(
            "SELECT tenant, model, prompt_tokens, completion_tokens, status FROM usage_ledger ORDER BY id"
        ).fetchall()
