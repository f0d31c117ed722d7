"""Start the studio: its own temporary folder, Gradio offline, the page behind the gate
(:mod:`vidinvert.studio.guard`) on ``HOST:PORT``.

Gradio is told to stay offline before it is imported (no analytics, no Hugging Face Hub calls, no
server-side rendering) and to keep its files in the studio's temporary folder, which is removed on
exit. The port is bound here first (``--port 0``: any free one), so the printed address is the
one served.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidinvert.errors import VidinvertError
from vidinvert.studio.guard import Guard
from vidinvert.studio.handlers import Handlers
from vidinvert.studio.page import CSS, build_page
from vidinvert.studio.request import StudioRequest
from vidinvert.studio.studio import Studio

__all__ = ["OFFLINE_ENV", "RunningStudio", "serve", "start"]

#: Set before Gradio is imported: no analytics, no Hub calls, no Node server.
OFFLINE_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
               "GRADIO_SSR_MODE": "False", "DO_NOT_TRACK": "1"}
#: Seconds to wait for the server to listen.
START_TIMEOUT_S = 60


@dataclass
class RunningStudio:
    """A started studio: ``url`` (with ``?token=`` when one is needed), the pieces, and :meth:`close`."""

    url: str
    base: str
    token: str | None
    studio: Any
    handlers: Any
    page: Any
    ui: dict
    server: Any
    thread: threading.Thread
    temp: Path
    closed: bool = field(default=False)

    def close(self) -> None:
        """Stop the server and remove the temporary folder (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.studio.cancel.set()
        self.server.should_exit = True
        self.thread.join(timeout=30)
        shutil.rmtree(self.temp, ignore_errors=True)

    def __enter__(self) -> RunningStudio:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), int(port)))
    except OSError as exc:
        sock.close()
        raise VidinvertError(f"cannot listen on {host}:{port} ({exc.strerror}): choose another --port (0: any free "
                             "one)") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _hosts(host: str, port: int) -> set[str]:
    """The Host header values a loopback studio answers to."""
    return {f"{h}:{port}" for h in ("127.0.0.1", "localhost", "[::1]", host.lower())}


def start(request: StudioRequest, *, editor=None) -> RunningStudio:
    """Start the studio in a background thread (``editor``: an already loaded session to use)."""
    request.check()
    temp = Path(tempfile.mkdtemp(prefix="vidinvert-studio-")).resolve()
    atexit.register(shutil.rmtree, temp, True)
    os.environ.update(OFFLINE_ENV, GRADIO_TEMP_DIR=str(temp / "gradio"))
    try:
        import gradio as gr
        import uvicorn
        from fastapi import FastAPI
    except ImportError as exc:
        raise VidinvertError(f"the studio needs Gradio ({exc.name} is missing): pip install 'vidinvert[studio]'") \
            from None

    studio = Studio(request, temp, editor=editor)
    handlers = Handlers(studio, images=temp / "gradio" / "shown")
    page, ui = build_page(handlers)
    page.queue(default_concurrency_limit=1)
    app = gr.mount_gradio_app(FastAPI(docs_url=None, redoc_url=None, openapi_url=None), page, path="/",
                              allowed_paths=[str(r.resolve()) for r in studio.roots],
                              max_file_size=request.upload_limit, footer_links=[], run_history=False, ssr_mode=False,
                              mcp_server=False, show_error=True, css=CSS)
    sock = _bind(request.host, request.port)
    port = sock.getsockname()[1]
    token = secrets.token_urlsafe(24) if request.remote else None
    guard = Guard(app, roots=studio.roots, hosts=None if request.remote else _hosts(request.host, port), token=token)
    server = uvicorn.Server(uvicorn.Config(guard, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="vidinvert-studio", daemon=True)
    thread.start()
    t0 = time.monotonic()
    while not server.started:
        if not thread.is_alive() or time.monotonic() - t0 > START_TIMEOUT_S:
            raise VidinvertError(f"the studio's server did not start on {request.host}:{port}")
        time.sleep(0.02)
    name = request.host if ":" not in request.host else f"[{request.host.strip('[]')}]"
    base = f"http://{name}:{port}"
    url = base + "/" + (f"?token={token}" if token else "")
    return RunningStudio(url, base, token, studio, handlers, page, ui, server, thread, temp)


def serve(request: StudioRequest, *, announce=print) -> None:
    """Run the studio until Ctrl-C: print its address (with the access token, once), then wait."""
    running = start(request)
    try:
        announce(f"vidinvert studio: open {running.url}")
        if running.token:
            announce("  (the access token above is printed once; every request needs it)")
        announce(f"  renders and uploads go to {running.studio.out}; Ctrl-C stops the studio")
        while running.thread.is_alive():
            running.thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        running.close()
