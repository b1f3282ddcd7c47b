"""Peak RSS of running processes, sampled on a thread of its own.

The benchmarks that run a fleet await on their event loop meanwhile; a thread keeps the
sampling steady whatever the loop is doing. A process that has ended is skipped, not an
error: the benchmark checks its processes itself and says which one ended.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import psutil


class RssSampler:
    """Samples each named process's RSS every `interval_s` between start() and stop()."""

    def __init__(self, processes: Mapping[str, psutil.Process], interval_s: float = 0.25) -> None:
        self.processes = dict(processes)
        self.interval_s = interval_s
        self.peak: dict[str, int] = {}  # name -> the highest RSS sampled, bytes
        self.samples: dict[str, int] = {}  # name -> how many samples were taken
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling (a sampler never started stops at once)."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, process in self.processes.items():
                try:
                    rss = int(process.memory_info().rss)
                except psutil.Error:
                    continue
                self.peak[name] = max(rss, self.peak.get(name, 0))
                self.samples[name] = self.samples.get(name, 0) + 1
            self._stop.wait(self.interval_s)
