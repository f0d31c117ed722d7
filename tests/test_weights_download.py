"""Downloads against a local HTTP server on 127.0.0.1: Range resume, sha256, Drive confirmation, licences."""

from __future__ import annotations

import hashlib
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vidinvert.errors import VidinvertError
from vidinvert.weights import registry
from vidinvert.weights.downloading import confirm_url, download
from vidinvert.weights.registry import WeightSpec

PAYLOAD = bytes((i * 7919 + (i >> 8) * 31) % 251 for i in range(300_000))  # not a multiple of any chunk
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()

DRIVE_PAGE = """<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>
<p>Google Drive can't scan this file for viruses.</p>
<form id="download-form" action="/usercontent/download" method="get">
<input type="submit" id="uc-download-link" class="goog-inline-block jfk-button" value="Download anyway"/>
<input type="hidden" name="id" value="FILEID"><input type="hidden" name="export" value="download">
<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="1234-abcd">
</form></body></html>"""

LEGACY_DRIVE_PAGE = """<html><body>Google Drive can't scan this file.
<a id="uc-download-link" href="/legacy?export=download&amp;confirm=AbCd&amp;id=FILEID">Download anyway</a>
</body></html>"""

QUOTA_PAGE = (
    "<html><body>Google Drive - Quota exceeded. Too many users have viewed or downloaded this file.</body></html>"
)


class ServerState:
    """What the handler serves and what it saw; reset for every test."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.truncate_next = 0  # number of upcoming file responses cut after half the body
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)


class Handler(BaseHTTPRequestHandler):
    state: ServerState

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send_page(self, html: str) -> None:
        body = html.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_file(self, data: bytes) -> None:
        st = self.state
        start = 0
        rng = self.headers.get("Range")
        if rng and not st.ignore_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if st.truncate_next > 0:
            st.truncate_next -= 1
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 - http.server API
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        self.state.requests.append((parts.path, self.headers.get("Range")))
        if parts.path == "/file.bin":
            self._send_file(PAYLOAD)
        elif parts.path == "/uc":  # Drive entry point: always the confirmation page
            self._send_page(DRIVE_PAGE if query.get("id") == "FILEID" else LEGACY_DRIVE_PAGE)
        elif parts.path == "/usercontent/download":
            ok = query.get("confirm") == "t" and query.get("uuid") == "1234-abcd" and query.get("id") == "FILEID"
            self._send_file(PAYLOAD) if ok else self._send_page(DRIVE_PAGE)
        elif parts.path == "/legacy":
            if query.get("confirm") == "AbCd":
                self._send_file(PAYLOAD)
            else:
                self._send_page(LEGACY_DRIVE_PAGE)
        elif parts.path == "/releases/download/v0.1.0/file.bin":  # GitHub: a redirect to the storage host
            self.send_response(302)
            self.send_header("Location", "/file.bin")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif parts.path == "/quota":
            self._send_page(QUOTA_PAGE)
        else:
            self.send_error(404)


@pytest.fixture(scope="module")
def server():
    state = ServerState()
    handler = type("BoundHandler", (Handler,), {"state": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield base, state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def srv(server):
    base, state = server
    state.reset()
    return base, state


def _register(monkeypatch, name: str, *, url: str, sha256: str | None = PAYLOAD_SHA, research_only=False):
    spec = WeightSpec(
        name=name,
        filename=f"{name}.bin",
        url=url,
        sha256=sha256,
        license="Test Licence NC-1.0: research only" if research_only else "MIT",
        research_only=research_only,
        format="test",
        description="test file",
    )
    monkeypatch.setitem(registry.REGISTRY, name, spec)
    return spec


def test_complete_download_checks_sha_and_reports_progress(srv, tmp_path, monkeypatch):
    base, state = srv
    _register(monkeypatch, "t-plain", url=f"{base}/file.bin")
    seen = []
    path = download("t-plain", tmp_path, progress=lambda done, total: seen.append((done, total)))
    assert path == tmp_path / "t-plain.bin"
    assert path.read_bytes() == PAYLOAD
    assert not (tmp_path / "t-plain.bin.part").exists()
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    # An existing file is not fetched again.
    n = len(state.requests)
    assert download("t-plain", tmp_path) == path
    assert len(state.requests) == n


def test_truncated_transfer_keeps_part_then_resumes_with_range(srv, tmp_path, monkeypatch):
    base, state = srv
    _register(monkeypatch, "t-trunc", url=f"{base}/file.bin")
    state.truncate_next = 1
    with pytest.raises(VidinvertError, match="resume") as info:
        download("t-trunc", tmp_path, retries=0)
    assert "\n" not in str(info.value)
    part = tmp_path / "t-trunc.bin.part"
    half = len(PAYLOAD) // 2
    assert part.stat().st_size == half and part.read_bytes() == PAYLOAD[:half]
    assert not (tmp_path / "t-trunc.bin").exists()

    path = download("t-trunc", tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert state.requests[-1] == ("/file.bin", f"bytes={half}-")
    assert not part.exists()


def test_resume_survives_a_release_redirect(srv, tmp_path, monkeypatch):
    base, state = srv
    _register(monkeypatch, "t-redirect", url=f"{base}/releases/download/v0.1.0/file.bin")
    state.truncate_next = 1
    with pytest.raises(VidinvertError):
        download("t-redirect", tmp_path, retries=0)
    assert download("t-redirect", tmp_path).read_bytes() == PAYLOAD
    half = f"bytes={len(PAYLOAD) // 2}-"
    assert state.requests[-2:] == [("/releases/download/v0.1.0/file.bin", half), ("/file.bin", half)]


def test_broken_transfer_is_resumed_automatically(srv, tmp_path, monkeypatch):
    base, state = srv
    _register(monkeypatch, "t-auto", url=f"{base}/file.bin")
    state.truncate_next = 2  # the first two responses break: 1/2 then 3/4 of the file arrive
    path = download("t-auto", tmp_path, retries=2)
    assert path.read_bytes() == PAYLOAD
    ranges = [r for _, r in state.requests]
    half = len(PAYLOAD) // 2
    assert ranges == [None, f"bytes={half}-", f"bytes={half + (len(PAYLOAD) - half) // 2}-"]


def test_server_ignoring_range_restarts_cleanly(srv, tmp_path, monkeypatch):
    base, state = srv
    _register(monkeypatch, "t-norange", url=f"{base}/file.bin")
    (tmp_path / "t-norange.bin.part").write_bytes(b"garbage that must not stay at the front")
    state.ignore_range = True
    assert download("t-norange", tmp_path).read_bytes() == PAYLOAD


def test_stale_complete_part_answered_416_restarts(srv, tmp_path, monkeypatch):
    base, state = srv
    _register(monkeypatch, "t-416", url=f"{base}/file.bin")
    (tmp_path / "t-416.bin.part").write_bytes(b"x" * (len(PAYLOAD) + 10))
    assert download("t-416", tmp_path).read_bytes() == PAYLOAD


def test_wrong_hash_errors_with_both_digests_and_leaves_nothing(srv, tmp_path, monkeypatch):
    base, _ = srv
    wrong = "0" * 64
    _register(monkeypatch, "t-badsha", url=f"{base}/file.bin", sha256=wrong)
    with pytest.raises(VidinvertError) as info:
        download("t-badsha", tmp_path)
    msg = str(info.value)
    assert wrong in msg and PAYLOAD_SHA in msg and "\n" not in msg
    assert list(tmp_path.iterdir()) == []


def test_hash_prefix_is_checked(srv, tmp_path, monkeypatch):
    base, _ = srv
    spec = _register(monkeypatch, "t-prefix", url=f"{base}/file.bin", sha256=None)
    monkeypatch.setitem(
        registry.REGISTRY, "t-prefix", WeightSpec(**{**spec.__dict__, "sha256_prefix": "deadbeef"})
    )
    with pytest.raises(VidinvertError, match="deadbeef"):
        download("t-prefix", tmp_path)
    monkeypatch.setitem(
        registry.REGISTRY, "t-prefix", WeightSpec(**{**spec.__dict__, "sha256_prefix": PAYLOAD_SHA[:8]})
    )
    assert download("t-prefix", tmp_path).read_bytes() == PAYLOAD


@pytest.mark.parametrize("entry", ["/uc?export=download&id=FILEID", "/uc?export=download&id=OTHER"])
def test_google_drive_confirmation_page_is_followed(srv, tmp_path, monkeypatch, entry):
    base, state = srv
    _register(monkeypatch, "t-drive", url=f"{base}{entry}")
    path = download("t-drive", tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert state.requests[0][0] == "/uc"
    assert state.requests[-1][0] in ("/usercontent/download", "/legacy")


def test_drive_page_is_resumed_after_confirmation(srv, tmp_path, monkeypatch):
    base, state = srv
    _register(monkeypatch, "t-drive-resume", url=f"{base}/uc?export=download&id=FILEID")
    state.truncate_next = 1
    with pytest.raises(VidinvertError):
        download("t-drive-resume", tmp_path, retries=0)
    assert download("t-drive-resume", tmp_path).read_bytes() == PAYLOAD
    assert state.requests[-1] == ("/usercontent/download", f"bytes={len(PAYLOAD) // 2}-")


def test_quota_page_is_an_error_not_a_file(srv, tmp_path, monkeypatch):
    base, _ = srv
    _register(monkeypatch, "t-quota", url=f"{base}/quota", sha256=None)
    with pytest.raises(VidinvertError, match="quota") as info:
        download("t-quota", tmp_path)
    assert str(tmp_path / "t-quota.bin") in str(info.value)
    assert not (tmp_path / "t-quota.bin").exists()


def test_http_error_names_url_and_place(srv, tmp_path, monkeypatch):
    base, _ = srv
    _register(monkeypatch, "t-404", url=f"{base}/nothing-here")
    with pytest.raises(VidinvertError, match="404") as info:
        download("t-404", tmp_path)
    assert f"{base}/nothing-here" in str(info.value) and str(tmp_path / "t-404.bin") in str(info.value)


def test_research_only_needs_accept_license(srv, tmp_path, monkeypatch):
    base, state = srv
    _register(monkeypatch, "t-nc", url=f"{base}/file.bin", research_only=True)
    with pytest.raises(VidinvertError) as info:
        download("t-nc", tmp_path)
    msg = str(info.value)
    assert "Test Licence NC-1.0" in msg and "--accept-license" in msg and "\n" not in msg
    assert state.requests == [] and list(tmp_path.iterdir()) == []
    assert download("t-nc", tmp_path, accept_license=True).read_bytes() == PAYLOAD


def test_unreachable_url_gives_one_line_with_url_and_path(tmp_path, monkeypatch):
    url = "http://127.0.0.1:1/weights.bin"
    _register(monkeypatch, "t-offline", url=url)
    with pytest.raises(VidinvertError) as info:
        download("t-offline", tmp_path, timeout=5)
    msg = str(info.value)
    assert msg.startswith(f"could not reach {url}")
    assert str(tmp_path / "t-offline.bin") in msg and "\n" not in msg


def test_url_override_and_default_destination(srv, monkeypatch, tmp_path):
    base, _ = srv
    _register(monkeypatch, "t-override", url="http://127.0.0.1:1/never-used")
    home = tmp_path / "home"
    monkeypatch.setenv("VIDINVERT_HOME", str(home))
    path = download("t-override", url=f"{base}/file.bin")
    assert path == home / "t-override.bin" and path.read_bytes() == PAYLOAD


def test_confirm_url_parses_form_link_and_cookie():
    base = "https://drive.google.com/uc?export=download&id=FILEID"
    form = urllib.parse.urlsplit(confirm_url(DRIVE_PAGE, base))
    assert form.netloc == "drive.google.com" and form.path == "/usercontent/download"
    assert dict(urllib.parse.parse_qsl(form.query)) == {
        "id": "FILEID", "export": "download", "confirm": "t", "uuid": "1234-abcd"
    }
    link = confirm_url(LEGACY_DRIVE_PAGE, base)
    assert link == "https://drive.google.com/legacy?export=download&confirm=AbCd&id=FILEID"
    cookie = confirm_url("<html>no form</html>", base, {"download_warning_123": "TOKEN"})
    assert dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(cookie).query))["confirm"] == "TOKEN"
    assert confirm_url(QUOTA_PAGE, base) is None


def test_registry_entries_are_complete():
    for name, spec in registry.REGISTRY.items():
        if name.startswith("t-"):
            continue
        assert spec.name == name and spec.filename and spec.url.startswith("https://")
        assert spec.sha256 is None or len(spec.sha256) == 64
        assert spec.license
    nc = {n for n, s in registry.REGISTRY.items() if s.research_only}
    assert {"stylegan2-ffhq", "psp-ffhq", "fs-encoder", "arcface", "boundary-smiling"} <= nc
    assert Path(registry.REGISTRY["lpips-alexnet"].url).name.split("-")[-1].startswith(
        registry.REGISTRY["lpips-alexnet"].sha256_prefix
    )
