"""The supervisor's side: publishes a snapshot of its run about twice a second, to the status
file (`cep top`) and, when asked, to the Prometheus exporter."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from cep.observe.snapshot import ProcessSampler, snapshot
from cep.observe.statusfile import StatusFile
from cep.runtime.metrics import RunStatus


class Publisher:
    """Made when the run directory is the supervisor's (it holds the lock); `close` when the run
    ends removes the status file, so a stale one never says a run goes on."""

    def __init__(self, run_dir: Path, metrics_port: int | None = None) -> None:
        self.status_file = StatusFile(run_dir)
        self.sampler = ProcessSampler()
        self.latest: dict[str, Any] | None = None
        self.exporter = None
        if metrics_port is not None:
            from cep.observe.prometheus import Exporter
            self.exporter = Exporter(metrics_port)

    def publish(self, status: RunStatus) -> None:
        self.latest = snapshot(status, self.sampler, self.latest)
        self.status_file.write(self.latest)
        if self.exporter is not None:
            self.exporter.publish(self.latest)

    def close(self) -> None:
        self.status_file.remove()
        if self.exporter is not None:
            self.exporter.close()
