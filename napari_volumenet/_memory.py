"""How much CPU memory this process may still use: free RAM, within its container's and its own limits.

``psutil.virtual_memory().available`` is the machine's free RAM; a container (cgroup v2
``memory.max``, cgroup v1 ``memory.limit_in_bytes``) or ``ulimit -v`` (``RLIMIT_AS``) can allow far
less, and going past them kills the process (cgroup) or fails every allocation (rlimit). No torch,
no Qt: the NIfTI reader and the tile planner both use it.
"""

from __future__ import annotations

import resource
from pathlib import Path

import psutil

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
MEMORY_FRACTION = {"cpu": 0.4, "cuda": 0.6, "mps": 0.4}
"""The share of a device's free memory the tile planner lets one batch of windows take."""
UNLIMITED = 1 << 60
"""cgroup v1 writes "no limit" as a number near 2⁶³; anything above this is taken as no limit."""


def _read_int(path: Path) -> int | None:
    """The integer in a cgroup file, ``None`` for "max", a missing or unreadable file."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_dirs(base: Path, proc_cgroup: Path, controller: str) -> list[Path]:
    """This process's cgroup folder under ``base`` and its ancestors up to ``base``.

    ``controller`` names the cgroup v1 hierarchy in ``/proc/self/cgroup`` (``"memory"``); ``""`` is
    the cgroup v2 line (``0::/path``). Unknown: just ``base``.
    """
    relative = ""
    try:
        for line in proc_cgroup.read_text().splitlines():
            parts = line.split(":", 2)
            if len(parts) == 3 and (parts[1] == controller if not controller else controller in parts[1].split(",")):
                relative = parts[2].strip().lstrip("/")
    except OSError:
        pass
    folder = base / relative if relative else base
    dirs = [folder]
    while folder != base and base in folder.parents:
        folder = folder.parent
        dirs.append(folder)
    return [d for d in dirs if d.is_dir()]


def cgroup_room(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int | None:
    """Bytes the cgroup limits still allow (limit − usage, the tightest level), ``None`` without a limit."""
    rooms = []
    for base, controller, limit_file, usage_file in (
        (root, "", "memory.max", "memory.current"),  # cgroup v2
        (root / "memory", "memory", "memory.limit_in_bytes", "memory.usage_in_bytes"),  # cgroup v1
    ):
        for folder in _cgroup_dirs(base, proc_cgroup, controller):
            limit = _read_int(folder / limit_file)
            if limit is not None and limit < UNLIMITED:
                rooms.append(limit - (_read_int(folder / usage_file) or 0))
    return max(0, min(rooms)) if rooms else None


def address_space_room() -> int | None:
    """Bytes of data ``ulimit -v`` (RLIMIT_AS) still leaves this process, ``None`` without a limit.

    Half of the address space left: the limit counts what is reserved, not used, and a run reserves
    far more than its data (a malloc arena of 64 MiB per thread, thread stacks, allocator caches);
    measured, a CPU upscale maps about twice its planned working set.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    return max(0, soft - psutil.Process().memory_info().vms) // 2


def available_memory() -> int:
    """Bytes of CPU memory this process can allocate now: the least of free RAM, cgroup and rlimit room."""
    rooms = [int(psutil.virtual_memory().available), cgroup_room(), address_space_room()]
    return min(r for r in rooms if r is not None)


def describe_bytes(n: float) -> str:
    """``1.5e9`` → ``"1.4 GiB"`` (binary units, one decimal; bytes as a whole number)."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    power = 0
    while abs(n) >= 1024 and power < len(units) - 1:
        n /= 1024
        power += 1
    return f"{n:.0f} B" if power == 0 else f"{n:.1f} {units[power]}"
