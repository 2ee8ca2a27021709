"""The embedded sentence embedder agrees with an independent float64 reference (bert_reference.py).

Fixed sentences: product titles from the demo catalog's kind, queries, and text that exercises the tokenizer
(accents, punctuation, digits, an unknown symbol, a text past the 256-token truncation). Every embedding must have
cosine similarity of at least 0.999 with the reference's, through the OpenAI SDK, one at a time and batched."""

import os

import numpy as np
import openai
import pytest

from bert_reference import BertReference

EMBEDDING_MODEL = "all-minilm-l6-v2"

SENTENCES = [
    "solid wood platform bed",
    "Gracie Oaks Velvet 3-Seater Sofa, 84\" wide",
    "outdoor patio dining set for 6 with umbrella",
    "modern led floor lamp dimmable",
    "kids' bunk bed w/ trundle & storage drawers",
    "Café table — marble top, brass legs",
    "rug 5x8 washable cotton blue/white",
    "ergonomic office chair with lumbar support (black)",
    "a rug for a small dining room under $200",
    "wall mounted bathroom vanity 30 inch",
    "Naïve résumé of the Zürich façade",
    "☃ snowman ornament",
    "12-piece stainless steel cookware set",
    "mid-century modern walnut sideboard credenza",
    "queen size memory foam mattress topper",
    "shoe storage bench entryway",
    " ".join(["extendable oak dining table seats eight"] * 60),
]


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server["base_url"] + "/v1", api_key="unused-without-a-master-key", max_retries=0)


@pytest.fixture(scope="module")
def reference():
    return BertReference(os.path.join(os.environ["FLYWHEEL_MODELS_DIR"], "all-MiniLM-L6-v2"))


def cosine(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_embeddings_agree_with_the_float64_reference(client, reference):
    expected = [reference.embed(sentence) for sentence in SENTENCES]
    batched = client.embeddings.create(model=EMBEDDING_MODEL, input=SENTENCES).data
    for sentence, want, got in zip(SENTENCES, expected, batched):
        assert cosine(want, got.embedding) >= 0.999, sentence[:60]
    for sentence, want in zip(SENTENCES[:4], expected):
        single = client.embeddings.create(model=EMBEDDING_MODEL, input=sentence).data[0].embedding
        assert cosine(want, single) >= 0.999, sentence
