"""A small OpenAI-compatible chat-completions server that answers from a script (good, unsafe and slow
answers) and records what it was asked: the stand-in language model of scenario runs and tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ScriptedLlm", "scripted_llm"]


class ScriptedLlm:
    def __init__(self) -> None:
        self.script: list[tuple[str, float]] = []  # (answer, delay in seconds), used in turn
        self.requests: list[dict[str, Any]] = []
        self.url = ""

    def answer(self, text: str, delay: float = 0.0) -> None:
        self.script.append((text, delay))


@contextmanager
def scripted_llm() -> Iterator[ScriptedLlm]:
    state = ScriptedLlm()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
            if not state.script:  # nothing scripted for this request: the model is "unavailable"
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            text, delay = state.script.pop(0)
            time.sleep(delay)
            out = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout test)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
