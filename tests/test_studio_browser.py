"""The studio end to end in a real headless Chromium (Debian's ``chromium``, driven by Playwright with
the system browser; background networking, component updates and sync off).

The page opens a fixture clip; the test chooses a face, changes the strength by typing and by the
arrow keys and chooses a region, and each time the after image, decoded from the PNG the page
received, equals the editing session's render bit for bit; it clicks Render and the output equals the
shown command's byte for byte. Every request the page made went to the studio's own address; an audit
hook in this (the server's) process saw no socket beyond loopback; a path-traversal request and a
foreign Origin are refused; an upload over the limit is refused on the page. Screenshots go to
``$VIDINVERT_TEST_ARTIFACTS`` (default ``.test-artifacts/studio`` in the repository).

Without Chromium or Playwright the test is skipped, except with ``CI`` set, where it fails.
"""

from __future__ import annotations

import io
import ipaddress
import os
import shlex
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.studio_fixtures import make_media, studio_request
from vidinvert import EditRequest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("VIDINVERT_TEST_ARTIFACTS", ROOT / ".test-artifacts" / "studio"))
CHROMIUM_FLAGS = ["--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--disable-default-apps", "--disable-domain-reliability",
                  "--disable-client-side-phishing-detection", "--no-sandbox", "--disable-dev-shm-usage"]
#: The upload limit of the studio under test (MB): the refused upload is just over it.
LIMIT_MB = 0.5

pytest.importorskip("dlib")
pytest.importorskip("gradio")


def _missing(what: str):
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI must run the browser test: .ci/run installs chromium)")
    pytest.skip(what)


def chromium_binary() -> str:
    """The system Chromium (the real binary behind Debian's /usr/bin/chromium wrapper when present)."""
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    _missing("no chromium on this machine (apt-get install chromium)")


class SocketAudit:
    """Every socket this process connects to, resolves or sends to that is not loopback."""

    def __init__(self) -> None:
        self.foreign: list[tuple] = []
        self.on = False

    @staticmethod
    def _loopback(host) -> bool:
        if host in (None, "", "localhost") or isinstance(host, int):
            return True
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return False

    def __call__(self, event: str, args: tuple) -> None:
        if not self.on or not event.startswith("socket."):
            return
        if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
            addr = args[1] if len(args) > 1 else None
            if isinstance(addr, tuple) and addr and not self._loopback(addr[0]):
                self.foreign.append((event, addr))
        elif event == "socket.getaddrinfo" and not self._loopback(args[0]):
            self.foreign.append((event, args[0]))


AUDIT = SocketAudit()
sys.addaudithook(AUDIT)


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_weights):
    return make_media(tmp_path_factory.mktemp("studio-browser"), tiny_weights)


@pytest.fixture(scope="module")
def studio(files):
    from vidinvert.studio.server import start

    AUDIT.on = True
    with start(studio_request(files, max_upload_mb=LIMIT_MB)) as running:
        yield running
    AUDIT.on = False


@pytest.fixture(scope="module")
def browser():
    binary = chromium_binary()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=binary, headless=True, args=CHROMIUM_FLAGS)
        yield b
        b.close()


class Page:
    """The studio's page, with every request and every PNG it received recorded."""

    def __init__(self, browser, url: str) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 1100})
        self.requests: list[str] = []
        self.pngs: dict[str, bytes] = {}
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("response", self._response)
        self.page.goto(url)

    def _response(self, r) -> None:
        if "/gradio_api/file=" in r.url and r.url.endswith(".png") and r.ok:
            try:
                self.pngs[r.url] = r.body()
            except Exception:  # a response the page dropped before it ended
                pass

    def wait_exact(self, command_has: str, timeout: float = 60_000) -> None:
        """Until the page shows the exact render of settings whose command line holds ``command_has``."""
        try:
            self._wait_exact(command_has, timeout)
        except Exception:
            self.shot("studio-failed")
            status, timing = self.page.locator("#status").inner_text(), self.page.locator("#timing").inner_text()
            command = self.page.locator("#command textarea").input_value()
            raise AssertionError(f"waiting for {command_has!r}: status {status!r}, timing {timing!r}, "
                                 f"command {command!r}") from None

    def _wait_exact(self, command_has: str, timeout: float) -> None:
        self.page.wait_for_function(
            """(want) => {
                const t = document.querySelector('#timing'), c = document.querySelector('#command textarea');
                const img = document.querySelector('#after img');
                return t && c && img && img.complete && t.innerText.startsWith('exact render')
                    && c.value.includes(want);
            }""", arg=command_has, timeout=timeout)

    def after(self) -> np.ndarray:
        """The after image as the page received it (the PNG's bytes, decoded)."""
        src = self.page.locator("#after img").get_attribute("src")
        self.page.wait_for_function("(s) => document.querySelector('#after img').src === s", arg=src)
        key = next((u for u in self.pngs if u.endswith(src.split("/gradio_api/file=")[-1])), None)
        for _ in range(100):
            if key is not None:
                break
            self.page.wait_for_timeout(50)
            key = next((u for u in self.pngs if u.endswith(src.split("/gradio_api/file=")[-1])), None)
        assert key is not None, src
        return np.asarray(Image.open(io.BytesIO(self.pngs[key])).convert("RGB"))

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def _status(base: str, path: str, headers: dict | None = None, data: bytes | None = None) -> int:
    req = urllib.request.Request(base + path, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_the_page_shows_the_exact_render_and_renders_the_shown_command(studio, browser, files, capsys):
    from vidinvert.cli.app import main

    editor = studio.studio.editor
    media = editor.open(files["clip"])
    page = Page(browser, studio.url)
    p = page.page

    def render(**options) -> np.ndarray:  # the page's first direction: the name found in the weights folder
        return editor.render(media, 0, EditRequest(inputs=(), attr=("smile",), detector="dlib", **options)).preview

    page.wait_exact("--attr smile")
    assert np.array_equal(page.after(), render(strength="3"))
    p.locator("#face label", has_text="0").click()  # choose a face (the first on the first frame with faces)
    page.wait_exact("--face 0")
    number = p.locator("#strength input[type=number]")
    number.fill("1.5")  # typing a number
    number.press("Enter")
    page.wait_exact("--strength 1.5")
    assert np.array_equal(page.after(), render(strength="1.5", face="0"))
    slider = p.locator("#strength input[type=range]")
    slider.focus()
    for _ in range(3):  # the arrow keys (step 0.1)
        slider.press("ArrowRight")
    page.wait_exact("--strength 1.8")
    assert np.array_equal(page.after(), render(strength="1.8", face="0"))
    p.locator("#region label", has_text="mouth").click()
    page.wait_exact("--region mouth")
    assert np.array_equal(page.after(), render(strength="1.8", face="0", region=("mouth",)))
    page.shot("studio-view")
    p.locator("#end input").fill("2")  # render frames 0..1
    p.locator("#end input").press("Enter")
    page.wait_exact("--end 2f")
    assert np.array_equal(page.after(), render(strength="1.8", face="0", region=("mouth",), end="2f"))

    command = p.locator("#command textarea").input_value()
    p.locator("#render").click()
    p.wait_for_function("() => document.querySelector('#rendered-command textarea').value.length > 0", timeout=120_000)
    assert p.locator("#rendered-command textarea").input_value() == command
    p.wait_for_function("() => { const v = document.querySelector('#video video'); return v && v.readyState >= 1; }",
                        timeout=60_000)  # the result loads in the page's video element
    page.shot("studio-rendered")
    made = Path(shlex.split(command)[shlex.split(command).index("--output") + 1])
    kept = made.with_name("studio-render.mp4")
    shutil.move(made, kept)
    assert main(shlex.split(command)[1:]) == 0, capsys.readouterr().err
    assert made.read_bytes() == kept.read_bytes()

    big = files["root"] / "big.npy"
    np.save(big, np.zeros(int(LIMIT_MB * 1e6 / 4) + 1000, np.float32))
    p.locator("#upload-direction input[type=file]").set_input_files(str(big))
    p.wait_for_function("() => /exceeds|too large|maximum/i.test(document.body.innerText)", timeout=20_000)
    page.shot("studio-upload-refused")
    assert not (studio.studio.uploads / "big.npy").exists()

    p.get_by_text("StyleSpace channels").click()  # a channel typed in its box, with Enter: summed with the direction
    box = p.locator("#channel textarea, #channel input").first
    box.fill("3_5=2")
    box.press("Enter")
    page.wait_exact("--channel 3_5=2")
    assert np.array_equal(page.after(), render(strength="1.8", face="0", region=("mouth",), end="2f",
                                               channel=("3_5=2",), combine=True))
    page.shot("studio-channel")
    box.fill("99_1")  # an unknown layer: the CLI's line on the page
    box.press("Enter")
    p.wait_for_function("() => document.querySelector('#status').innerText.includes('layer 99 does not exist')",
                        timeout=30_000)

    foreign = [u for u in page.requests if not u.startswith(studio.base + "/") and not u.startswith(("data:", "blob:"))]
    assert page.requests and not foreign, foreign
    assert not AUDIT.foreign, AUDIT.foreign
    p.close()


def test_the_server_refuses_traversal_and_foreign_origins(studio, files):
    base = studio.base
    secret = files["root"] / "secret.txt"
    secret.write_text("secret")
    assert _status(base, "/") == 200
    for path in (f"/gradio_api/file={files['media']}/../secret.txt", f"/gradio_api/file={secret}",
                 "/gradio_api/file=/etc/passwd", "/gradio_api/file=http://example.com/a.png",
                 "/gradio_api/proxy=http://example.com/"):
        assert _status(base, urllib.request.quote(path, safe="/=:")) == 403, path
    assert _status(base, "/gradio_api/queue/join", {"Origin": "http://evil.example", "Content-Type":
                                                    "application/json"}, b"{}") == 403
    assert _status(base, "/config", {"Origin": "http://evil.example"}) == 403
    assert _status(base, "/", {"Host": "evil.example"}) == 403
    assert not AUDIT.foreign, AUDIT.foreign


def test_a_remote_studio_needs_its_access_token(files):
    """``--host 0.0.0.0 --allow-remote``: no request passes without the token printed at start; the
    first address (``?token=``) sets a same-site cookie that later requests carry."""
    from vidinvert.studio.guard import COOKIE
    from vidinvert.studio.server import start

    with start(studio_request(files, host="0.0.0.0", allow_remote=True)) as remote:
        assert remote.token and remote.url.endswith(f"/?token={remote.token}") and remote.temp.is_dir()
        local = remote.base.replace("0.0.0.0", "127.0.0.1")
        assert _status(local, "/") == 401 and _status(local, "/config") == 401
        assert _status(local, f"/?token={remote.token[:-1]}x") == 401
        with urllib.request.urlopen(f"{local}/?token={remote.token}", timeout=30) as r:
            cookie = r.headers["Set-Cookie"]
        assert cookie.startswith(f"{COOKIE}={remote.token}") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert _status(local, "/config", {"Cookie": f"{COOKIE}={remote.token}"}) == 200
        assert _status(local, "/config", {"Cookie": f"{COOKIE}={remote.token}", "Origin": "http://evil.example"}) == 403
    assert not remote.temp.exists()  # the studio's temporary folder (Gradio's files too) is gone on exit
