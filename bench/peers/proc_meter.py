"""CPU and RSS from /proc for the bench harnesses (standard library only, any Python >= 3.11).

The harness's own process CPU is ``time.process_time()`` (the kernel's per-process CPU clock, every
thread, nanoseconds): /proc's utime + stime count 10 ms clock ticks, and at 10k diffs/s a peer uses
~20 ms of CPU a second, so a 10 s window held only ~20 ticks (+-5 % from rounding alone, +-10 % in a
5 s window). The simulator's, the machine's and the per-thread figures are /proc's (other
processes, or a breakdown: ticks are enough there)."""

from __future__ import annotations

import os
import time

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _proc_cpu_s(pid: int | str = "self") -> float:
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14, 15)


def _system_busy_s() -> float:
    values = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / _TICK


def rss_bytes() -> int:
    return int(open("/proc/self/statm").read().split()[1]) * _PAGE


def thread_count() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds per Python thread of this process, by name (a trailing ``-N`` dropped, same names
    summed); threads Python does not know (native code's) are the process's total minus these."""
    import re
    import threading

    out: dict[str, float] = {}
    for thread in threading.enumerate():
        name = re.sub(r"-\d+$", "", thread.name)
        out[name] = out.get(name, 0.0) + _proc_cpu_s(f"self/task/{thread.native_id}")
    return out


class Meter:
    def __init__(self, sim_pid: int | None) -> None:
        self.sim_pid = sim_pid
        self._t0 = self._own0 = self._sim0 = self._sys0 = 0.0
        self._threads0: dict[str, float] = {}

    def start(self) -> None:
        self._threads0 = thread_cpu_s()
        self._own0, self._sys0 = time.process_time(), _system_busy_s()
        self._sim0 = _proc_cpu_s(self.sim_pid) if self.sim_pid else 0.0
        self._t0 = time.perf_counter()

    def stop(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self._t0
        own = time.process_time() - self._own0
        sim = _proc_cpu_s(self.sim_pid) - self._sim0 if self.sim_pid else 0.0
        system = _system_busy_s() - self._sys0
        threads = thread_cpu_s()
        scale = 100.0 / elapsed if elapsed > 0 else 0.0
        # per thread (clock ticks: 10 ms resolution), for where a peer's CPU goes
        by_thread = {name: round((cpu - self._threads0[name]) * scale * 10.0, 1)
                     for name, cpu in sorted(threads.items()) if name in self._threads0}
        return {"cpu_percent": own * scale, "sim_cpu_percent": sim * scale,
                "other_cpu_percent": max(0.0, system - own - sim) * scale, "thread_cpu_ms_per_s": by_thread}
