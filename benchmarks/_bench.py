"""Helpers shared by the benchmark scripts: machine description, result lines, RSS sampling."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def single_thread_env() -> None:
    """One BLAS/OpenMP thread (call before importing numpy or torch)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def header(title: str, dtype: str = "float64") -> None:
    import torch

    load = os.getloadavg()
    print(f"== {title}")
    print(
        f"   {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads "
        f"in this process), dtype {dtype}, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    if load[0] > (os.cpu_count() or 1) + 0.5:
        print(
            "   NOTE: the machine is busy with other work (load > cores): wall times are "
            "inflated; ratios measured in the same script are the fairer figures."
        )


def line(name: str, value: float, unit: str, target: str, met: bool | None) -> None:
    verdict = "" if met is None else ("MET" if met else "NOT MET")
    print(f"   {name:<48} {value:>12.4g} {unit:<10} target {target:<14} {verdict}")


class PeakRSS:
    """Samples the summed resident memory of a process and its children (psutil)."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.pid, self.every, self.peak = pid, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.every)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def relubench(args: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Run the ``relubench`` CLI; return (wall seconds, peak summed RSS bytes, output)."""
    cmd = [sys.executable, "-m", "harness.cli", *args]
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    with PeakRSS(proc.pid) as rss:
        out, _ = proc.communicate()
    return time.perf_counter() - start, rss.peak, out


class ProcessTree(PeakRSS):
    """:class:`PeakRSS` that also counts the processes the root started and their CPU time.

    CPU time is the largest of: the root's own rusage from ``wait4`` (it includes the
    children it reaped) and the summed last-sampled CPU times of every process seen
    (children that outlive their parent's wait, e.g. a forkserver's workers).
    """

    def __init__(self, pid: int, every: float = 0.02, limit: int | None = None) -> None:
        super().__init__(pid, every)
        self.cpu: dict[int, float] = {}
        self.limit = limit
        self.killed = False

    def _run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for p in procs:
                try:
                    total += p.memory_info().rss
                    t = p.cpu_times()
                    self.cpu[p.pid] = t.user + t.system
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            if self.limit is not None and total > self.limit:  # stop it before it swaps
                self.killed = True
                for p in procs:
                    try:
                        p.kill()
                    except psutil.Error:
                        pass
            time.sleep(self.every)

    @property
    def processes(self) -> int:
        """Processes started by the root (the root itself not counted)."""
        return max(0, len(self.cpu) - 1)


def measure(
    cmd: list[str],
    env: dict[str, str] | None = None,
    output: Path | None = None,
    limit: int | None = None,
) -> dict[str, float]:
    """Run ``cmd`` to exit: wall s, CPU s (user + system, the whole process tree),
    processes started, peak summed RSS bytes, exit code, and whether it was killed for
    passing ``limit`` bytes of summed RSS. With ``output``, stdout and stderr go to that
    file."""
    start = time.perf_counter()
    sink = open(output, "w") if output else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=sink,
        stderr=subprocess.STDOUT if output else subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    with ProcessTree(proc.pid, limit=limit) as tree:
        _, status, usage = os.wait4(proc.pid, 0)
    if output:
        sink.close()
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    own = usage.ru_utime + usage.ru_stime
    return {
        "wall": wall,
        "cpu": max(own, sum(tree.cpu.values())),
        "processes": tree.processes,
        "rss": tree.peak,
        "rc": proc.returncode,
        "killed": tree.killed,
    }


def median(values: list[float]) -> float:
    s = sorted(values)
    return s[len(s) // 2] if len(s) % 2 else 0.5 * (s[len(s) // 2 - 1] + s[len(s) // 2])
