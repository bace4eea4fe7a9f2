"""Shared by the framework apps: the per-server data directory and the file gates
with which a test holds a response (or a background task) until it says so."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

GATE_TIMEOUT = 10.0


def data_dir() -> Path:
    """The directory the test gave this server ($FW_DATA_DIR): files to send, gates,
    markers the app writes."""
    return Path(os.environ.get("FW_DATA_DIR", "."))


async def wait_for_gate(name: str) -> bool:
    """Wait (polling, on the event loop) until the test creates `data_dir()/name`; False
    if it never does within GATE_TIMEOUT."""
    gate = data_dir() / name
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GATE_TIMEOUT
    while not gate.exists():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def write_marker(name: str, text: str) -> None:
    """Write a marker file atomically (the test polls for it and reads it whole)."""
    target = data_dir() / name
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, target)
