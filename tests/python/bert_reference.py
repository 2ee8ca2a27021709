"""An independent float64 reference for BERT sentence embedders (all-MiniLM-L6-v2 and its kind).

Written from the published architecture, sharing nothing with the engine under test: its own safetensors reader,
its own WordPiece tokenizer (BERT's uncased basic tokenization, then greedy longest-match word pieces), and the
encoder in numpy float64 (exact erf GELU, post-layer-norm), mean pooling over the tokens and L2 normalization, as
the model's sentence-transformers config says. Slow, and meant to be: it is the yardstick, not the engine."""

import json
import math
import os
import struct
import unicodedata

import numpy as np


def load_safetensors(path):
    """Every tensor of a safetensors file, as float64 (or int64) numpy arrays by name."""
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    with open(path, "rb") as file:
        header_len = struct.unpack("<Q", file.read(8))[0]
        header = json.loads(file.read(header_len))
        data = file.read()
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        array = np.frombuffer(data[start:end], dtype=dtypes[meta["dtype"]]).reshape(meta["shape"])
        tensors[name] = array.astype(np.int64 if meta["dtype"] == "I64" else np.float64)
    return tensors


def _is_punctuation(char):
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(code):
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0x2A700 <= code <= 0x2CEAF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


class WordPiece:
    """BERT's uncased tokenizer: clean, lower-case, strip accents, split on spaces and punctuation, word pieces."""

    def __init__(self, vocab_path, max_chars_per_word=100):
        with open(vocab_path, encoding="utf-8") as file:
            self.ids = {line.rstrip("\n"): index for index, line in enumerate(file)}
        self.max_chars_per_word = max_chars_per_word

    def _basic(self, text):
        cleaned = []
        for char in text:
            code = ord(char)
            if code == 0 or code == 0xFFFD or (unicodedata.category(char).startswith("C") and char not in "\t\n\r"):
                continue
            if _is_cjk(code):
                cleaned.append(f" {char} ")
            elif char.isspace():
                cleaned.append(" ")
            else:
                cleaned.append(char)
        words = []
        for word in "".join(cleaned).lower().split():
            word = "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")
            current = ""
            for char in word:
                if _is_punctuation(char):
                    if current:
                        words.append(current)
                        current = ""
                    words.append(char)
                else:
                    current += char
            if current:
                words.append(current)
        return words

    def _pieces(self, word):
        if len(word) > self.max_chars_per_word:
            return ["[UNK]"]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.ids:
                    break
                end -= 1
            if end == start:
                return ["[UNK]"]
            pieces.append(piece)
            start = end
        return pieces

    def encode(self, text, max_tokens):
        """Token ids with [CLS] and [SEP], truncated to `max_tokens` in all."""
        pieces = [piece for word in self._basic(text) for piece in self._pieces(word)]
        pieces = ["[CLS]"] + pieces[: max_tokens - 2] + ["[SEP]"]
        return [self.ids[piece] for piece in pieces]


def _layer_norm(x, weight, bias, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


_erf = np.vectorize(math.erf)


class BertReference:
    """Sentence embeddings from a sentence-transformers BERT directory, in float64."""

    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as file:
            self.config = json.load(file)
        max_seq = self.config["max_position_embeddings"]
        sbert = os.path.join(model_dir, "sentence_bert_config.json")
        if os.path.exists(sbert):
            with open(sbert) as file:
                max_seq = min(max_seq, json.load(file).get("max_seq_length", max_seq))
        self.max_tokens = max_seq
        self.weights = load_safetensors(os.path.join(model_dir, "model.safetensors"))
        self.tokenizer = WordPiece(os.path.join(model_dir, "vocab.txt"))

    def _w(self, name):
        # Some exports prefix every tensor with the model's name.
        return self.weights[name] if name in self.weights else self.weights["bert." + name]

    def embed(self, text):
        w, config = self._w, self.config
        eps = config["layer_norm_eps"]
        heads = config["num_attention_heads"]
        ids = self.tokenizer.encode(text, self.max_tokens)
        n = len(ids)
        x = (
            w("embeddings.word_embeddings.weight")[ids]
            + w("embeddings.position_embeddings.weight")[:n]
            + w("embeddings.token_type_embeddings.weight")[0]
        )
        x = _layer_norm(x, w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"), eps)
        hidden = x.shape[1]
        size = hidden // heads
        for layer in range(config["num_hidden_layers"]):
            p = f"encoder.layer.{layer}."

            def dense(value, name, p=p):
                return value @ w(p + name + ".weight").T + w(p + name + ".bias")

            q = dense(x, "attention.self.query").reshape(n, heads, size).transpose(1, 0, 2)
            k = dense(x, "attention.self.key").reshape(n, heads, size).transpose(1, 0, 2)
            v = dense(x, "attention.self.value").reshape(n, heads, size).transpose(1, 0, 2)
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(size)
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(1, 0, 2).reshape(n, hidden)
            x = _layer_norm(
                x + dense(context, "attention.output.dense"),
                w(p + "attention.output.LayerNorm.weight"),
                w(p + "attention.output.LayerNorm.bias"),
                eps,
            )
            inner = dense(x, "intermediate.dense")
            inner = 0.5 * inner * (1.0 + _erf(inner / math.sqrt(2.0)))
            x = _layer_norm(
                x + dense(inner, "output.dense"),
                w(p + "output.LayerNorm.weight"),
                w(p + "output.LayerNorm.bias"),
                eps,
            )
        pooled = x.mean(axis=0)
        return pooled / np.linalg.norm(pooled)
