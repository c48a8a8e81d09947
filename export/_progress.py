"""Progress lines for the slow export steps (stderr, with elapsed seconds)."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager


class Progress:
    def __init__(self, enabled: bool = True, stream=None):
        self.enabled = enabled
        self.stream = stream or sys.stderr

    @contextmanager
    def step(self, what: str):
        t0 = time.perf_counter()
        if self.enabled:
            print(f"[export] {what} ...", file=self.stream, flush=True)
        yield
        if self.enabled:
            print(f"[export] {what}: done in {time.perf_counter() - t0:.1f}s", file=self.stream,
                  flush=True)

    def note(self, msg: str):
        if self.enabled:
            print(f"[export] {msg}", file=self.stream, flush=True)
