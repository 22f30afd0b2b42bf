"""The local process at the other end of an HTTP request, for the `freeze_caller` fault.

A crash test that kills a worker "while its call is in flight" must prove that the request was
still in flight when the worker died. Looking the worker up and signalling it from the test takes
milliseconds to seconds on a loaded machine, during which the worker's own timeout may run out
and it moves on: the test then kills it *after* the call, and silently tests another moment.
The emulator sees the request arrive, so it can stop the caller right there: it finds the
process holding the other end of the TCP connection (Linux `/proc`, the caller on this host and
visible to this user) and sends it SIGSTOP. A stopped process cannot close its socket or time
out, so the request stays in flight for as long as the test likes.

Only for tests and demos on one host: a caller in another container or on another machine is
not found, and the fault then only holds the request (as `delay`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

PROC = Path("/proc")


def _port_hex(port: int) -> str:
    return f"{port:04X}"


def socket_inodes(client_port: int, server_port: int) -> set[str]:
    """Inodes of the TCP sockets whose local port is `client_port` and remote port
    `server_port`: the caller's end of the connection (IPv4 and IPv6 tables)."""
    found: set[str] = set()
    local_suffix, remote_suffix = f":{_port_hex(client_port)}", f":{_port_hex(server_port)}"
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in (PROC / "net" / table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) < 10:
                    continue
                local, remote, inode = fields[1], fields[2], fields[9]
                if local.endswith(local_suffix) and remote.endswith(remote_suffix) and inode != "0":
                    found.add(inode)
    return found


def holders(inodes: set[str]) -> list[int]:
    """Processes with one of the sockets `inodes` open (this one excluded)."""
    if not inodes:
        return []
    wanted = {f"socket:[{inode}]" for inode in inodes}
    pids: list[int] = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in wanted:
                        pids.append(int(entry.name))
                        break
    return sorted(pids)


def state(pid: int) -> str | None:
    """The process's state letter (`T`: stopped), None when it is gone."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def freeze(client: tuple[str, int] | None, server: tuple[str, int] | None) -> list[int]:
    """SIGSTOP the local processes holding the caller's end of this connection and return
    them once each is seen stopped (at most a second each); empty when none is found here."""
    if client is None or server is None:
        return []
    pids = holders(socket_inodes(int(client[1]), int(server[1])))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 1.0
    for pid in pids:
        while state(pid) not in ("T", "t", None) and time.monotonic() < deadline:
            time.sleep(0.005)
    return pids
