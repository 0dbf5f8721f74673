"""A real embedding provider on 127.0.0.1 for the semantic-search tests.

It computes real embeddings with a real small model (wordllama
l2_supercat, 256 d: a Llama-2 BPE tokenizer and a [32000, 256] table, mean
pooled and L2-normalised, exactly wordllama's `embed(norm=True)`) and speaks
the providers' real HTTP APIs:

- OpenAI  `POST /v1/embeddings` {"model", "input": str | [str],
  "encoding_format"?: "float" | "base64", "dimensions"?}; `Authorization:
  Bearer <key>` when started with a key (401 in OpenAI's error shape if not).
- Voyage  the same path and shape (its body may add "input_type",
  "truncation", "output_dimension", "output_dtype").
- Ollama  `POST /api/embed` {"model", "input": str | [str]} → {"model",
  "embeddings": [[...]]}, and the legacy `POST /api/embeddings` {"model",
  "prompt"} → {"embedding": [...]}. No authentication, as Ollama.
- Gemini  `POST /v1beta/models/{model}:embedContent` and
  `:batchEmbedContents`, key in `x-goog-api-key` or `?key=`.

Test controls, switchable at run time in process (`EmbedServer.set(...)`) or
over HTTP (`POST /_control` with the same names as JSON; `GET /_control` for
the counters): `delay` seconds before answering, `fail_status` (500, 503,
429 with `retry_after`...), `garbage` (a 200 whose body is unusable: see
GARBAGE), and counters of requests and the last credentials seen.

In process:   s = EmbedServer(api_key="sk-...").start(); s.url; s.stop()
By hand:      python tests/e2e/embed_server.py --port 11434 [--api-key KEY]

The request's model name picks the vectors: "wordllama-l2-supercat-256"
(MODEL_NAME) is the model as it is; any other name is the same model turned
by a fixed rotation derived from the name (see `rotation`), so two
"providers" give equally good but mutually incompatible vectors, as two real
ones do.

`embed(texts, model=...)` gives the same vectors as a numpy float32 [n, 256]
array, for brute-force checks in the tests.
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL_DIR = ROOT / ".tools" / "models" / "wordllama-l2-supercat-256"
MODEL_NAME = "wordllama-l2-supercat-256"


def model_dir() -> Path:
    """The staged model: `PG_MCP_EMBED_MODEL_DIR`, else .tools/models/…"""
    return Path(os.environ.get("PG_MCP_EMBED_MODEL_DIR") or DEFAULT_MODEL_DIR)


def model_present(d: Path | None = None) -> bool:
    d = d or model_dir()
    return (d / "model.safetensors").is_file() and (d / "tokenizer.json").is_file()


class Model:
    """Tokenizer + embedding table + mean pooling + L2 normalisation."""

    def __init__(self, directory: Path):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.directory = Path(directory)
        tensors = load_file(str(self.directory / "model.safetensors"))
        table = tensors["embedding.weight"]
        # F16 on disk; every sum in float32, as wordllama does.
        self.table = np.ascontiguousarray(table.astype(np.float32))
        self.dimensions = int(self.table.shape[1])
        self.tokenizer = Tokenizer.from_file(str(self.directory / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.lock = threading.Lock()

    def token_ids(self, text: str) -> list[int]:
        with self.lock:
            return self.tokenizer.encode(text, add_special_tokens=False).ids

    def embed(self, texts: list[str] | str, model: str | None = None) -> np.ndarray:
        if isinstance(texts, str):
            texts = [texts]
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for i, text in enumerate(texts):
            ids = self.token_ids(text)
            if not ids:
                raise ValueError(f"text {i} has no tokens")
            v = self.table[np.asarray(ids, dtype=np.int64)].mean(axis=0, dtype=np.float32)
            out[i] = v / np.linalg.norm(v)
        q = rotation(model, self.dimensions)
        if q is not None:
            out = out @ q
            out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out


_rotations: dict[tuple[str, int], np.ndarray] = {}


def rotation(model: str | None, dimensions: int) -> np.ndarray | None:
    """The base model (None or MODEL_NAME) as it is; any other model name, the
    same model turned by a fixed rotation derived from the name. Cosines
    between two texts of one model are unchanged, so each name is as good a
    model as the base, but vectors of two names do not match: a client that
    ranks one provider's query against another provider's stored vectors
    gets nonsense, as it would with two real providers."""
    if model is None or model == MODEL_NAME:
        return None
    key = (model, dimensions)
    with _models_lock:
        if key not in _rotations:
            seed = int(hashlib.sha256(model.encode()).hexdigest()[:16], 16)
            a = np.random.default_rng(seed).standard_normal((dimensions, dimensions))
            q, r = np.linalg.qr(a)
            _rotations[key] = (q * np.sign(np.diag(r))).astype(np.float32)
        return _rotations[key]


_models: dict[str, Model] = {}
_models_lock = threading.Lock()


def load_model(directory: Path | None = None) -> Model:
    key = str(Path(directory or model_dir()).resolve())
    with _models_lock:
        if key not in _models:
            _models[key] = Model(Path(key))
        return _models[key]


def embed(texts: list[str] | str, model: str | None = None, directory: Path | None = None) -> np.ndarray:
    """Unit vectors, float32 [n, dimensions], for `texts` as the provider's
    `model` gives them (ValueError on a text with no tokens)."""
    return load_model(directory).embed(texts, model)


def to_blob(v: np.ndarray) -> bytes:
    """pgEdge's storage: little-endian float32."""
    return np.asarray(v, dtype="<f4").tobytes()


def from_blob(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype="<f4").astype(np.float32)


# What `garbage` can make a 200 answer carry. Each is unusable by a client
# that checks what it got.
GARBAGE = ("dimension", "malformed", "shape", "count", "nonfinite", "html")


class EmbedServer:
    """The provider, run in a thread of the test process."""

    def __init__(self, port: int | None = None, api_key: str | None = None, directory: Path | None = None,
                 dimensions: int | None = None, log_path: Path | None = None):
        self.model = load_model(directory)
        self.port = port or 0
        self.api_key = api_key
        self.dimensions = dimensions or self.model.dimensions
        self.log_path = log_path
        self.lock = threading.Lock()
        self.httpd: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        self.release = threading.Event()  # set on stop: frees delayed answers
        self.connections: set[socket.socket] = set()
        self.reset()

    # ---- controls -------------------------------------------------------
    def reset(self) -> None:
        """Healthy again, and the counters back to zero."""
        with self.lock:
            self.delay = 0.0
            self.fail_status: int | None = None
            self.retry_after: str | None = None
            self.garbage: str | list[str] | None = None
            self.requests = 0
            self.answered = 0
            self.by_path: collections.Counter = collections.Counter()
            self.last_authorization: str | None = None
            self.last_credential: str | None = None
            self.authorizations: set[str] = set()
            self.bodies: list[dict] = []
            self.texts: list[str] = []

    def set(self, **controls) -> None:
        """delay=seconds, fail_status=int|None, retry_after=str|None, garbage=kind|[kinds]|None."""
        with self.lock:
            for k, v in controls.items():
                if k not in ("delay", "fail_status", "retry_after", "garbage"):
                    raise KeyError(k)
                if k == "garbage" and v is not None:
                    for kind in ([v] if isinstance(v, str) else v):
                        if kind not in GARBAGE:
                            raise ValueError(f"garbage kind {kind!r}: one of {GARBAGE}")
                setattr(self, k, float(v) if k == "delay" else v)

    def healthy(self) -> None:
        self.set(delay=0, fail_status=None, retry_after=None, garbage=None)

    def stats(self) -> dict:
        with self.lock:
            return {"requests": self.requests, "answered": self.answered, "by_path": dict(self.by_path),
                    "last_authorization_scheme": (self.last_authorization or "").split(" ")[0] or None,
                    "models": sorted({b.get("model", "") for b in self.bodies if isinstance(b, dict)}),
                    "delay": self.delay, "fail_status": self.fail_status, "garbage": self.garbage}

    # ---- life -----------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "EmbedServer":
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self.release.clear()
        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        httpd.daemon_threads = True
        self.httpd = httpd
        self.port = httpd.server_address[1]
        self.thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
                                       name=f"embed-server-{self.port}")
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection: the provider is down."""
        if self.httpd is None:
            return
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        with self.lock:
            conns, self.connections = list(self.connections), set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(5)
        self.httpd = None

    def restart(self) -> "EmbedServer":
        """Up again on the same port."""
        self.stop()
        deadline = time.monotonic() + 5
        while True:
            try:
                return self.start()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def log(self, line: str) -> None:
        # Method, path and status only: never a header or a body (keys).
        if self.log_path:
            with self.lock, open(self.log_path, "a") as f:
                f.write(f"{time.strftime('%H:%M:%S')} {line}\n")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_owner: EmbedServer
    timeout = 30
    disable_nagle_algorithm = True  # else a delayed ACK adds 40 ms to each answer

    def setup(self):
        super().setup()
        with self.server_owner.lock:
            self.server_owner.connections.add(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            with self.server_owner.lock:
                self.server_owner.connections.discard(self.connection)

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
        pass

    # ---- plumbing -------------------------------------------------------
    def _send(self, status: int, body: bytes | dict | list, headers: dict | None = None, content_type: str = "application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self._headers_buffer.append(b"\r\n")  # end_headers, sent with the body in one write
            self.wfile.write(b"".join(self._headers_buffer) + data)
            self._headers_buffer = []
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
            return
        with self.server_owner.lock:
            self.server_owner.answered += 1
        self.server_owner.log(f"{self.command} {self.path.split('?')[0]} {status}")

    def _read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"null")
        except ValueError:
            return _BAD_JSON

    def do_GET(self):  # noqa: N802 - the stdlib's name
        path = urllib.parse.urlsplit(self.path).path
        if path == "/_control":
            return self._send(200, self.server_owner.stats())
        if path in ("/", "/api/version"):
            return self._send(200, {"version": "0.0.0-embed-server"})
        if path == "/api/tags":
            return self._send(200, {"models": [{"name": MODEL_NAME, "model": MODEL_NAME}]})
        return self._send(404, {"error": "not found"})

    def do_POST(self):  # noqa: N802 - the stdlib's name
        s = self.server_owner
        split = urllib.parse.urlsplit(self.path)
        path = split.path
        body = self._read_json()
        if path == "/_control":
            if not isinstance(body, dict):
                return self._send(400, {"error": "a JSON object"})
            if body.pop("reset", False):
                s.reset()
            try:
                s.set(**body)
            except (KeyError, ValueError) as e:
                return self._send(400, {"error": str(e)})
            return self._send(200, s.stats())

        auth = self.headers.get("Authorization")
        goog = self.headers.get("x-goog-api-key") or dict(urllib.parse.parse_qsl(split.query)).get("key")
        with s.lock:
            s.requests += 1
            s.by_path[path] += 1
            if auth is not None:
                s.last_authorization = auth
                s.authorizations.add(auth)
            cred = auth[7:] if auth and auth.startswith("Bearer ") else goog
            if cred is not None:
                s.last_credential = cred
            s.bodies.append(body if body is not _BAD_JSON else {"_malformed": True})
            delay, fail_status, retry_after, garbage = s.delay, s.fail_status, s.retry_after, s.garbage
            n = s.requests
        if delay:
            s.release.wait(delay)

        kind = _route(path)
        if kind is None:
            return self._send(404, {"error": f"no route for {path}"} if path.startswith("/api/") else
                              {"error": {"message": f"Unknown request URL: POST {path}.", "type": "invalid_request_error",
                                         "param": None, "code": "unknown_url"}})
        if fail_status:
            return self._fail(kind, fail_status, retry_after)
        if kind in ("openai", "gemini") and s.api_key is not None:
            presented = (auth[7:] if auth and auth.startswith("Bearer ") else None) if kind == "openai" else goog
            if presented != s.api_key:
                return self._unauthorized(kind, presented)
        if body is _BAD_JSON:
            return self._bad_request(kind, "We could not parse the JSON body of your request.")
        try:
            texts, extra = _texts(kind, path, body)
        except ValueError as e:
            return self._bad_request(kind, str(e))
        model = path.rsplit("/", 1)[-1].split(":")[0] if kind == "gemini" else body["model"]
        try:
            vectors = s.model.embed(texts, model)
        except ValueError as e:
            return self._bad_request(kind, f"invalid input: {e}")
        with s.lock:
            s.texts.extend(texts)
        if s.dimensions != vectors.shape[1]:
            vectors = vectors[:, : s.dimensions]
        if garbage:
            kinds = [garbage] if isinstance(garbage, str) else list(garbage)
            return self._garbage(kind, path, body, kinds[(n - 1) % len(kinds)], vectors)
        tokens = sum(len(s.model.token_ids(t)) for t in texts)
        return self._send(200, _answer(kind, path, body, vectors, tokens, extra))

    # ---- answers --------------------------------------------------------
    def _fail(self, kind: str, status: int, retry_after: str | None):
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        if kind == "ollama":
            return self._send(status, {"error": "server busy, please try again" if status == 503 else f"failed ({status})"}, headers)
        if status == 429:
            msg = {"message": "Rate limit reached for requests. Please try again later.", "type": "requests",
                   "param": None, "code": "rate_limit_exceeded"}
        else:
            msg = {"message": "The server had an error while processing your request. Sorry about that!",
                   "type": "server_error", "param": None, "code": None}
        if kind == "gemini":
            msg = {"code": status, "message": msg["message"], "status": "RESOURCE_EXHAUSTED" if status == 429 else "UNAVAILABLE"}
        return self._send(status, {"error": msg}, headers)

    def _unauthorized(self, kind: str, presented: str | None):
        if kind == "gemini":
            return self._send(400, {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                                              "status": "INVALID_ARGUMENT"}})
        if presented:
            # As OpenAI: a masked key, never the whole of it.
            shown = presented[:3] + "*" * 8 + presented[-4:] if len(presented) > 8 else "****"
            message = f"Incorrect API key provided: {shown}. You can find your API key at https://platform.openai.com/account/api-keys."
            code = "invalid_api_key"
        else:
            message = ("You didn't provide an API key. You need to provide your API key in an Authorization header "
                       "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
            code = None
        return self._send(401, {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}})

    def _bad_request(self, kind: str, message: str):
        if kind == "ollama":
            return self._send(400, {"error": message})
        if kind == "gemini":
            return self._send(400, {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}})
        return self._send(400, {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}})

    def _garbage(self, kind: str, path: str, body: dict, what: str, vectors: np.ndarray):
        if what == "malformed":
            return self._send(200, b'{"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.01, 0.0')
        if what == "html":
            return self._send(200, b"<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html")
        if what == "dimension":
            vectors = np.concatenate([vectors, vectors[:, :7]], axis=1)  # 263 numbers, not 256
        elif what == "count":
            vectors = vectors[:0]
        elif what == "nonfinite":
            raw = json.dumps(_answer(kind, path, body, vectors, 0, {})).encode()
            return self._send(200, re.sub(rb"-?\d\.\d+(e-?\d+)?", b"NaN", raw, count=9))
        if what == "shape":
            return self._send(200, {"object": "list", "data": "embedding", "embeddings": {"values": None}, "embedding": "nope"})
        return self._send(200, _answer(kind, path, body, vectors, 0, {}))


_BAD_JSON = object()


def _route(path: str) -> str | None:
    if path in ("/v1/embeddings", "/embeddings"):
        return "openai"  # and Voyage
    if path in ("/api/embed", "/api/embeddings"):
        return "ollama"
    if re.fullmatch(r"/v1(beta)?/models/[^/:]+:(embedContent|batchEmbedContents)", path):
        return "gemini"
    return None


def _texts(kind: str, path: str, body) -> tuple[list[str], dict]:
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    if kind == "gemini":
        reqs = body.get("requests") if path.endswith(":batchEmbedContents") else [body]
        if not isinstance(reqs, list) or not reqs:
            raise ValueError("requests: a non-empty list")
        texts = []
        for r in reqs:
            parts = (r.get("content") or {}).get("parts") if isinstance(r, dict) else None
            if not isinstance(parts, list) or not all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in parts):
                raise ValueError("content.parts[].text is required")
            texts.append("".join(p["text"] for p in parts))
        dims = body.get("outputDimensionality") or (reqs[0].get("outputDimensionality") if isinstance(reqs[0], dict) else None)
        return texts, {"dimensions": dims}
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ValueError("model is required" if kind == "ollama" else "you must provide a model parameter")
    if path == "/api/embeddings":  # Ollama's legacy endpoint
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise ValueError("prompt is required")
        return [prompt], {}
    inp = body.get("input")
    if isinstance(inp, str):
        texts = [inp]
    elif isinstance(inp, list) and inp and all(isinstance(t, str) for t in inp):
        texts = inp
    else:
        raise ValueError("'input' must be a string or a non-empty array of strings")
    if kind == "openai":
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64", None):
            raise ValueError(f"encoding_format {fmt!r}: 'float' or 'base64'")
        dims = body.get("dimensions", body.get("output_dimension"))
        if dims is not None and dims != 256:
            raise ValueError(f"dimensions {dims}: this model only gives 256")
        if body.get("input_type") not in (None, "query", "document"):
            raise ValueError("input_type: null, 'query' or 'document'")
        return texts, {"base64": fmt == "base64"}
    return texts, {}


def _answer(kind: str, path: str, body: dict, vectors: np.ndarray, tokens: int, extra: dict) -> dict:
    model = body.get("model", MODEL_NAME) if isinstance(body, dict) else MODEL_NAME
    rows = [v.astype(np.float32) for v in vectors]
    if kind == "ollama":
        if path == "/api/embeddings":
            return {"embedding": rows[0].tolist() if rows else []}
        return {"model": model, "embeddings": [r.tolist() for r in rows], "total_duration": 1000,
                "load_duration": 10, "prompt_eval_count": tokens}
    if kind == "gemini":
        if path.endswith(":batchEmbedContents"):
            return {"embeddings": [{"values": r.tolist()} for r in rows]}
        return {"embedding": {"values": rows[0].tolist() if rows else []}}

    def one(r: np.ndarray):
        return base64.b64encode(to_blob(r)).decode() if extra.get("base64") else r.tolist()

    return {"object": "list", "data": [{"object": "embedding", "index": i, "embedding": one(r)} for i, r in enumerate(rows)],
            "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


# ---- the client side: what pgEdge's KB builder does ----------------------
def embed_via_http(base: str, provider: str, texts: list[str], model: str = MODEL_NAME, api_key: str | None = None,
                   batch: int = 16) -> np.ndarray:
    """Embed `texts` through a provider's HTTP API (base: the server's root URL)."""
    out = []
    for i in range(0, len(texts), batch):
        part = texts[i:i + batch]
        headers = {"Content-Type": "application/json"}
        if provider == "ollama":
            url, body = f"{base}/api/embed", {"model": model, "input": part}
        elif provider == "gemini":
            url = f"{base}/v1beta/models/{model}:batchEmbedContents"
            body = {"requests": [{"model": f"models/{model}", "content": {"parts": [{"text": t}]}} for t in part]}
            if api_key:
                headers["x-goog-api-key"] = api_key
        else:  # openai, voyage
            url, body = f"{base}/v1/embeddings", {"model": model, "input": part}
            if provider == "voyage":
                body["input_type"] = "document"
            if api_key:
                headers["Authorization"] = f"Bearer {api_key}"
        req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=30) as resp:
            answer = json.loads(resp.read())
        if provider == "ollama":
            rows = answer["embeddings"]
        elif provider == "gemini":
            rows = [e["values"] for e in answer["embeddings"]]
        else:
            rows = [d["embedding"] for d in sorted(answer["data"], key=lambda d: d["index"])]
        out.extend(rows)
    return np.asarray(out, dtype=np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--api-key", default=os.environ.get("EMBED_SERVER_API_KEY"))
    p.add_argument("--model-dir", type=Path, default=None)
    args = p.parse_args()
    s = EmbedServer(port=args.port, api_key=args.api_key, directory=args.model_dir).start()
    print(f"embedding {s.model.dimensions}-d vectors at {s.url} (OpenAI/Voyage {s.url}/v1, Ollama {s.url}); "
          f"controls: POST {s.url}/_control", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        s.stop()


if __name__ == "__main__":
    main()
