"""Download registry files (standard library only).

GitHub release assets, raw files and Google Drive files (its virus-scan confirmation page is
parsed and followed). The transfer goes to ``<file>.part`` beside the destination; a partial
``.part`` is resumed with an HTTP Range request; the sha256 is checked when known (a mismatch
deletes the ``.part``); the file is renamed into place only when complete. Files under a
research-only or non-commercial licence need ``accept_license=True``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import http.cookiejar
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import ContextManager

from vidinvert.errors import VidinvertError
from vidinvert.version import __version__
from vidinvert.weights.registry import REGISTRY, WeightSpec, find, get_spec, install_dir

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, "int | None"], None]
CHUNK = 1 << 20
_MAX_HTML = 2 << 20  # never read more than this of a page we only parse


class _ConfirmPageParser(HTMLParser):
    """Collects the forms (action, hidden inputs) and links of a download confirmation page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[tuple[str, list[tuple[str, str]]]] = []
        self.links: list[str] = []
        self._in_form = False

    def handle_starttag(self, tag, attrs):
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "form":
            self.forms.append((a.get("action", ""), []))
            self._in_form = True
        elif tag == "input" and self._in_form and a.get("name"):
            if a.get("type", "hidden").lower() in ("hidden", "text"):
                self.forms[-1][1].append((a["name"], a.get("value", "")))
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False


def confirm_url(page: str, base_url: str, cookies: dict[str, str] | None = None) -> str | None:
    """The URL that confirms a Google-Drive-style 'cannot scan for viruses' page, or None.

    Looks, in order, for a form whose hidden inputs include ``confirm`` (current Drive), a link
    carrying ``confirm=`` (older Drive) and a ``download_warning`` cookie (oldest Drive).
    """
    parser = _ConfirmPageParser()
    try:
        parser.feed(page)
    except Exception:  # malformed HTML: fall through to the other ways
        pass
    for action, fields in parser.forms:
        names = {n for n, _ in fields}
        if "confirm" in names or "id" in names:
            target = urllib.parse.urljoin(base_url, action or base_url)
            sep = "&" if urllib.parse.urlsplit(target).query else "?"
            return target + sep + urllib.parse.urlencode(fields)
    for href in parser.links:
        if "confirm=" in href:
            return urllib.parse.urljoin(base_url, href)
    for name, value in (cookies or {}).items():
        if name.startswith("download_warning"):
            parts = urllib.parse.urlsplit(base_url)
            query = urllib.parse.parse_qsl(parts.query) + [("confirm", value)]
            return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    return None


def _opener() -> tuple[urllib.request.OpenerDirector, http.cookiejar.CookieJar]:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.addheaders = [("User-Agent", f"vidinvert/{__version__} (+urllib)")]
    return opener, jar


def _is_html(response) -> bool:
    return "text/html" in (response.headers.get("Content-Type") or "").lower()


def _total_size(response, offset: int) -> int | None:
    if response.status == 206:
        rng = response.headers.get("Content-Range", "")  # bytes a-b/total
        if "/" in rng and rng.rsplit("/", 1)[1].strip().isdigit():
            return int(rng.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length")
    if length and length.isdigit():
        return int(length) + (offset if response.status == 206 else 0)
    return None


class _Unreachable(Exception):
    """The server could not be reached (offline, refused, DNS, timeout)."""


class _Failed(Exception):
    """The server answered, but not with the file."""


class _Truncated(Exception):
    def __init__(self, done: int, total: int | None) -> None:
        super().__init__(f"{done} of {total if total is not None else '?'} bytes")
        self.done, self.total = done, total


def _open(opener, url: str, offset: int, timeout: float):
    """The response for ``url`` (from byte ``offset``), or None when the server says 416 (range not satisfiable)."""
    req = urllib.request.Request(url)
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    try:
        return opener.open(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            return None
        raise _Failed(f"HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Unreachable(str(reason)) from exc


def _transfer(opener, jar, url: str, part: Path, timeout: float, progress: ProgressFn | None) -> None:
    """Fetch ``url`` into ``part`` (resuming it), following at most two confirmation pages."""
    for _attempt in range(3):  # the original URL, then at most two confirmation hops
        offset = part.stat().st_size if part.exists() else 0
        response = _open(opener, url, offset, timeout)
        if response is None:
            part.unlink(missing_ok=True)  # a stale .part the server cannot extend: start again from zero
            continue
        with response:
            if _is_html(response):
                page = response.read(_MAX_HTML).decode("utf-8", "replace")
                cookies = {c.name: c.value or "" for c in jar}
                nxt = confirm_url(page, response.geturl(), cookies)
                if nxt is None or nxt == url:
                    low = page.lower()
                    why = (
                        "the download quota is exceeded (try later)"
                        if "quota" in low or "too many users" in low
                        else "the server sent a web page instead of the file"
                    )
                    raise _Failed(why)
                log.info("following the download confirmation page of %s", url)
                url = nxt
                continue
            if offset and response.status != 206:
                offset = 0  # the server ignored the Range request: restart
            total = _total_size(response, offset)
            done = offset
            with part.open("ab" if offset else "wb") as f:
                if progress is not None:
                    progress(done, total)
                while True:
                    try:
                        chunk = response.read(CHUNK)
                    except http.client.IncompleteRead as exc:
                        f.write(exc.partial)
                        done += len(exc.partial)
                        chunk = b""
                    except (TimeoutError, ConnectionError, OSError) as exc:
                        raise _Truncated(done, total) from exc
                    if not chunk:
                        break
                    f.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
            if total is not None and done < total:
                raise _Truncated(done, total)
            return
    raise _Failed("too many confirmation pages")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def license_notice(spec: WeightSpec) -> str:
    """One line stating the licence of a file and whether it must be accepted."""
    gate = " (research-only / non-commercial: needs --accept-license)" if spec.research_only else ""
    return f"{spec.name} ({spec.filename}): {spec.license}{gate}"


def download(
    name: str,
    dest_dir: Path | str | None = None,
    *,
    accept_license: bool = False,
    url: str | None = None,
    progress: ProgressFn | None = None,
    retries: int = 2,
    timeout: float = 60.0,
) -> Path:
    """Download registry file ``name`` into ``dest_dir`` (default: :func:`install_dir`) and return its path.

    ``url`` overrides the registry URL (mirrors, tests). ``progress(done_bytes, total_bytes|None)``
    is called as data arrives. A broken transfer is resumed from its ``.part`` file up to
    ``retries`` times (and again by a later call). An existing destination file is returned as is.
    Raises VidinvertError: licence not accepted, URL unreachable (naming the URL and the path to
    place the file by hand), HTTP error, sha256 mismatch (both digests; the partial file is removed).
    """
    spec = get_spec(name)
    dest = Path(dest_dir).expanduser() if dest_dir is not None else install_dir(None)
    target = dest / spec.filename
    if spec.research_only and not accept_license:
        raise VidinvertError(
            f"{spec.name} is under a research-only / non-commercial licence: {spec.license}; "
            f"read it ({spec.homepage or spec.url}) and re-run with --accept-license to accept it"
        )
    if target.is_file():
        return target
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VidinvertError(f"cannot create the weights folder {dest}: {exc.strerror or exc}") from exc
    source = url or spec.url
    part = target.with_name(target.name + ".part")
    opener, jar = _opener()
    attempt = 0
    while True:
        try:
            _transfer(opener, jar, source, part, timeout, progress)
            break
        except _Unreachable as exc:
            raise VidinvertError(
                f"could not reach {source} ({exc}); download it by hand and place it at {target}"
            ) from None
        except _Failed as exc:
            raise VidinvertError(
                f"download of {source} failed ({exc}); download it by hand and place it at {target}"
            ) from None
        except _Truncated as exc:
            attempt += 1
            if attempt > retries:
                raise VidinvertError(
                    f"download of {source} stopped at {exc}; run the same command again to resume"
                    f" (partial file {part})"
                ) from None
            log.info("download of %s stopped at %s; resuming", source, exc)
    digest = _sha256(part)
    ok = spec.hash_matches(digest)
    if ok is False:
        part.unlink(missing_ok=True)
        expected = spec.sha256 or f"{spec.sha256_prefix}..."
        raise VidinvertError(
            f"sha256 mismatch for {spec.filename} from {source}: expected {expected}, got {digest};"
            " the file was deleted"
        )
    os.replace(part, target)
    log.info("saved %s (sha256 %s)", target, digest)
    return target


def download_many(names: Sequence[str], weights_dir: Path | str | None = None, *, accept_license: bool = False,
                  progress: Callable[[str], ContextManager[ProgressFn | None]] | None = None) -> dict:
    """``vidinvert weights download``: the named registry files (default: every missing one) into the
    install folder. ``progress(name)`` gives a context whose value is the byte callback (or None).

    Returns ``{"dest", "weights": [{name, path, status (present|downloaded|failed), error}]}``. Licences
    of gated files are logged first and refused without ``accept_license``; one failure among several
    is logged and the others still run; any failure raises at the end (one line)."""
    specs = [get_spec(n) for n in dict.fromkeys(names)] if names else list(REGISTRY.values())
    dest = install_dir(weights_dir)
    results, todo = [], []
    for spec in specs:
        present = find(spec.name, weights_dir)
        if present is None:
            todo.append(spec)
            continue
        results.append({"name": spec.name, "path": str(present), "status": "present", "error": None})
        if names:
            log.info(f"{spec.name}: already present at {present}")
    gated = [s for s in todo if s.research_only]
    for spec in gated:
        log.info(license_notice(spec))
    if gated and not accept_license:
        raise VidinvertError(f"{', '.join(s.name for s in gated)}: research-only / non-commercial licence (printed "
                             "above); re-run with --accept-license to accept it")
    failures: list[VidinvertError] = []
    for spec in todo:
        log.info(f"downloading {spec.name} from {spec.url}")
        try:
            with (progress(spec.name) if progress else contextlib.nullcontext()) as update:
                path = download(spec.name, dest, accept_license=accept_license, progress=update)
        except VidinvertError as exc:
            failures.append(exc)
            results.append({"name": spec.name, "path": None, "status": "failed", "error": exc.message})
            if len(todo) > 1:
                log.error(f"error: {exc.message}")
            continue
        results.append({"name": spec.name, "path": str(path), "status": "downloaded", "error": None})
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise VidinvertError(f"{len(failures)} of {len(todo)} downloads failed (see above)")
    if not todo and not names:
        log.info(f"every known model file is present (searched from {dest})")
    return {"dest": str(dest), "weights": results}
