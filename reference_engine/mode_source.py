"""Where an engine instance learns its storage mode: the live control record or a config file."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import yaml

from hybrid_migration.engine_control import ControlRecord, config_digest

from .engine import Engine

log = logging.getLogger("reference_engine")


class ControlRecordWatcher:
    """Polls the control record, applies changes and acknowledges them; heartbeats meanwhile.

    If PostgreSQL is unreachable the instance keeps serving its last mode (the safe choice:
    every mode writes to Neo4j) and stops heartbeating, so flips report it as not live.
    """

    def __init__(
        self,
        engine: Engine,
        control: ControlRecord,
        address: str | None,
        poll_interval: float = 0.1,
        heartbeat_interval: float = 1.0,
    ) -> None:
        self.engine = engine
        self.control = control
        self.address = address
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="control-record", daemon=True)

    def start(self) -> None:
        """Register, apply the current mode before serving, then watch in the background."""
        self._announce()
        self._thread.start()

    def _announce(self) -> None:
        instance = self.engine.settings.instance_id
        self.control.register(instance, self.address)
        record = self.control.current()
        self.engine.serve(record.mode, record.generation, "control_record")
        self.control.acknowledge(instance, record.mode, record.generation)

    def poll(self) -> None:
        record = self.control.current()
        if self.engine.serve(record.mode, record.generation, "control_record"):
            self.control.acknowledge(self.engine.settings.instance_id, record.mode, record.generation)

    def _run(self) -> None:
        since_heartbeat = 0.0
        while not self._stop.wait(self.poll_interval):
            try:
                self.poll()
                since_heartbeat += self.poll_interval
                if since_heartbeat >= self.heartbeat_interval:
                    if not self.control.heartbeat(self.engine.settings.instance_id):
                        self._announce()
                    since_heartbeat = 0.0
            except Exception as error:
                log.warning("control record unreachable, still serving %s: %s", self.engine.mode, error)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self.control.deregister(self.engine.settings.instance_id)
        except Exception as error:
            log.warning("could not deregister: %s", error)
        self.control.close()


class ConfigFileMode:
    """Reads ``storage_mode`` from a YAML (or JSON) file at start and on every reload (SIGHUP)."""

    def __init__(self, engine: Engine, path: Path) -> None:
        self.engine = engine
        self.path = path
        self.digest = ""
        self.generation = 0

    def reload(self) -> None:
        """Apply the file; a broken file is logged and the current mode kept."""
        try:
            text = self.path.read_text(encoding="utf-8")
            data = yaml.safe_load(text) if self.path.suffix in {".yml", ".yaml"} else json.loads(text)
            mode = data["storage_mode"]
            generation = int(data.get("mode_generation", self.generation + 1))
            self.engine.serve(mode, generation, "config_file")
        except Exception as error:
            log.error("config file %s not applied, still serving %s: %s", self.path, self.engine.mode, error)
            return
        self.digest = self.engine.config_digest = config_digest(text)
        self.generation = generation
