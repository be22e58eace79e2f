"""Resource usage from Linux's /proc for the process provider's GetStats: CPU time and resident
memory of a container's process tree (every process of the session its main process leads), and
of the node. The parse_* functions are pure and unit-tested."""

import os
from typing import NamedTuple, Optional

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
NS_PER_TICK = 1_000_000_000 // CLOCK_TICKS


class ProcStat(NamedTuple):
    session: int
    cpu_ticks: int  # utime + stime
    children_ticks: int  # cutime + cstime: reaped children
    rss_pages: int


def parse_stat(text: str) -> ProcStat:
    """Parses /proc/<pid>/stat. The command name (field 2) may hold spaces and parentheses, so
    fields are counted from the last ')'."""
    fields = text[text.rindex(")") + 2 :].split()  # fields[0] is field 3 (state)
    return ProcStat(
        session=int(fields[3]),
        cpu_ticks=int(fields[11]) + int(fields[12]),
        children_ticks=int(fields[13]) + int(fields[14]),
        rss_pages=int(fields[21]),
    )


def parse_meminfo(text: str) -> dict:
    """/proc/meminfo as {name: bytes}."""
    out = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            out[name] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return out


def parse_cpu_and_boot(text: str) -> tuple[int, int]:
    """From /proc/stat: busy CPU ticks of all cores (user nice system irq softirq steal) and the
    boot time in seconds since the epoch."""
    busy, boot = 0, 0
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in parts[1:9])
            busy = user + nice + system + irq + softirq + steal
        elif parts and parts[0] == "btime":
            boot = int(parts[1])
    return busy, boot


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read()
    except OSError:  # the process is gone
        return None


class Usage(NamedTuple):
    cpu_ns: int
    rss_bytes: int


def session_usage(leader: int) -> Usage:
    """CPU and RSS of every live process in the session `leader` leads, plus the CPU of the
    children the leader reaped."""
    cpu, rss = 0, 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        text = _read(f"/proc/{entry}/stat")
        if text is None:
            continue
        st = parse_stat(text)
        if st.session != leader:
            continue
        cpu += st.cpu_ticks + (st.children_ticks if int(entry) == leader else 0)
        rss += st.rss_pages
    return Usage(cpu * NS_PER_TICK, rss * PAGE_SIZE)


def node_usage() -> tuple[int, int, int, int]:
    """(busy CPU ns since boot, memory in use in bytes, total memory in bytes, boot time s)."""
    busy, boot = parse_cpu_and_boot(_read("/proc/stat") or "")
    mem = parse_meminfo(_read("/proc/meminfo") or "")
    total = mem.get("MemTotal", 0)
    return busy * NS_PER_TICK, total - mem.get("MemAvailable", total), total, boot
