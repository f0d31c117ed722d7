"""Background threads of the streaming jobs: one bounded prefetch helper, one ordered writer.

``prefetch(make, depth)`` runs an iterator in a thread ``depth`` items ahead (decoding, the face
stage); the consumer gets the items in order, the producer's exception re-raised where the
consumer reads, and leaving the consumer early (an error, ``break``, ``close()``) stops and joins
the producer. ``WriterThread`` runs queued calls in order in one thread (encoding, files); the
first error surfaces on the next ``put`` or on ``join``.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
_END = object()


def prefetch(make: Callable[[], Iterable[T]], depth: int, *, name: str = "vidinvert-prefetch") -> Iterator[T]:
    """Run ``make()`` in a thread, at most ``depth`` items ahead of the consumer."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        it = None
        try:
            it = iter(make())
            for item in it:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((_END, None))
        except BaseException as exc:  # noqa: BLE001 - forwarded to the consumer
            q.put((_END, exc))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item, exc = q.get()
            if item is _END:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            try:
                q.get(timeout=0.1)
            except queue.Empty:
                pass
        worker.join()


class WriterThread:
    """Runs queued calls in order in one thread; ``put(fn)`` queues, errors surface on ``put``/``join``.

    After the first error the remaining calls are skipped (a half-written output is never
    continued); ``join`` waits for the queue to drain and re-raises that error.
    """

    def __init__(self, depth: int = 2, *, name: str = "vidinvert-writer") -> None:
        self._q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            fn = self._q.get()
            if fn is None:
                return
            if self._error is None:
                try:
                    fn()
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                    self._error = exc

    def put(self, fn: Callable[[], None]) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(fn)

    def join(self) -> None:
        self._q.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
