"""Who owns a record: this machine's name in the stores, and a process told apart from a later
one that reuses its pid (pid + start time). Trials record their owner when claimed; the lockbox
records who looks; recovery and `hpo check` ask whether an owner on this host is still alive."""

from __future__ import annotations

import os
import socket
import zlib


def host_id() -> str:
    """This machine's name in the stores: HPO_HOST_ID (e.g. one per container sharing a
    hostname), else the hostname. Recorded on every trial it runs and mixed into sampler seeds."""
    return os.environ.get("HPO_HOST_ID", "").strip() or socket.gethostname()


def host_seed(seed: int) -> int:
    """`seed` mixed with this host's identity: the sampler seed of its claims (each claim adds the
    trial count, so processes of one host differ too)."""
    return (seed + 7919 * (zlib.crc32(host_id().encode()) % 65521)) % 2**31


def process_token(pid: int) -> str:
    """Start time of `pid` (Linux clock ticks since boot) to tell a live process from a reused
    pid; "" where /proc is not available."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def process_alive(pid: int, token: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not token or process_token(pid) in ("", token)
