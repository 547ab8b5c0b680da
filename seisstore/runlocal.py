"""Run a campaign on this machine the way CiGri runs it on a grid: best effort.

Every line of ``param.txt`` runs through the campaign's own ``start.bash``; a line whose
job is killed, or ends with exit 2 (a transient iRODS failure), is submitted again (up to
``attempts`` times), as CiGri resubmits best-effort jobs that OAR killed; other failures
are reported, not repeated.  The jobs find ``secure-iget`` of this installation first on
their PATH.  A finished line leaves a marker in ``.run/`` so that a
second ``run-local`` only runs what is left.  ``preempt`` kills running jobs at random,
as a busy cluster reclaims best-effort cores: it is how the resubmission is exercised.
Stopping ``run-local`` (Ctrl-C, SIGTERM) stops every running job's process group
(:mod:`seisstore.children`) and submits nothing more.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from seisstore.campaign import PARAM_FILE, START_FILE
from seisstore.children import stop_groups, unwind_on_sigterm
from seisstore.display import Meter
from seisstore.params import parse_param_line

log = logging.getLogger(__name__)

STATE_DIR = ".run"
# Worth a resubmission: killed (TERM 143, KILL 137) or a transient failure still there at
# the deadline (secure-iget/secure-iput exit 2: "resubmit later").  Other codes are final.
RESUBMIT_CODES = {2, 137, 143}


@dataclass
class LineResult:
    name: str
    attempts: int = 0
    killed: int = 0
    returncode: int | None = None

    @property
    def done(self) -> bool:
        return self.returncode == 0


@dataclass
class RunReport:
    results: list[LineResult] = field(default_factory=list)
    skipped: int = 0

    @property
    def failed(self) -> list[LineResult]:
        return [r for r in self.results if not r.done]

    @property
    def resubmitted(self) -> int:
        return sum(max(0, r.attempts - 1) for r in self.results)


def read_lines(directory: Path) -> list[list[str]]:
    """The fields of each param line, validated once before anything runs."""
    path = directory / PARAM_FILE
    if not path.is_file() or not (directory / START_FILE).is_file():
        raise ValueError(f"{directory} is not a campaign directory (no {PARAM_FILE} or {START_FILE})")
    lines = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            parse_param_line(line)
        except ValueError as exc:
            raise ValueError(f"{PARAM_FILE} line {number}: {exc}") from None
        lines.append(line.split())
    if not lines:
        raise ValueError(f"{path} has no jobs")
    return lines


class LocalRunner:
    def __init__(self, directory: Path, jobs: int = 2, attempts: int = 3, preempt: float = 0.0,
                 preempt_within: float = 2.0, env: dict[str, str] | None = None, seed: int | None = None,
                 console: Console | None = None) -> None:
        if jobs < 1 or attempts < 1 or not 0.0 <= preempt < 1.0:
            raise ValueError("jobs and attempts must be >= 1, preempt within [0, 1)")
        self.directory = Path(directory).resolve()
        self.jobs, self.attempts = jobs, attempts
        self.preempt, self.preempt_within = preempt, preempt_within
        self.env = env
        self.rng = random.Random(seed)
        self.rng_lock = threading.Lock()
        self.console = console or Console(stderr=True)
        self.state = self.directory / STATE_DIR
        self.logs = self.state / "logs"
        self.tmp = self.state / "tmp"     # TMPDIR of the jobs: what a killed job leaves stays here
        self.running: set[subprocess.Popen] = set()
        self.running_lock = threading.Lock()
        self.stopping = False

    def marker(self, name: str) -> Path:
        return self.state / f"{name}.done"

    def run(self) -> RunReport:
        lines = read_lines(self.directory)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(exist_ok=True)
        todo = [fields for fields in lines if not self.marker(fields[0]).exists()]
        report = RunReport(skipped=len(lines) - len(todo))
        with Meter(self.console, every=0) as meter:
            task = meter.task("jobs", len(lines), completed=report.skipped)
            with unwind_on_sigterm(), ThreadPoolExecutor(self.jobs) as pool:
                futures = [pool.submit(self._run_line, fields) for fields in todo]
                try:
                    for future in as_completed(futures):
                        result = future.result()
                        report.results.append(result)
                        meter.advance(task)
                        if not meter.is_bar:    # a log (the demo's, a batch job's): one line per finished job
                            meter.print(f"job {result.name} {'done' if result.done else 'failed'}"
                                        f" ({report.skipped + len(report.results)} of {len(lines)};"
                                        f" {result.attempts} attempt{'s' if result.attempts > 1 else ''}"
                                        f"{f', {result.killed} preempted' if result.killed else ''})")
                        if not result.done:
                            meter.print(f"[red]job {result.name} failed after {result.attempts} attempts"
                                        f" (exit {result.returncode}); log in {self.logs}")
                except BaseException:   # Ctrl-C, SIGTERM: the jobs stop with us
                    self.stop()
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
        shutil.rmtree(self.tmp, ignore_errors=True)
        return report

    def stop(self) -> None:
        """Submit nothing more and stop the running jobs' process groups."""
        self.stopping = True
        with self.running_lock:
            running = list(self.running)
        stop_groups(running)

    def _run_line(self, fields: list[str]) -> LineResult:
        result = LineResult(fields[0])
        while result.attempts < self.attempts and not self.stopping:
            result.attempts += 1
            result.returncode, killed = self._attempt(fields, result.attempts)
            result.killed += killed
            if result.returncode == 0:
                tmp = self.marker(result.name).with_suffix(".tmp")
                tmp.write_text(f"attempts={result.attempts}\n")
                os.replace(tmp, self.marker(result.name))
                break
            if not (killed or result.returncode in RESUBMIT_CODES or result.returncode < 0):
                break     # a real failure: resubmitting would fail the same way
            log.info("job %s attempt %d ended with %s%s", result.name, result.attempts, result.returncode,
                     " (preempted)" if killed else "")
        return result

    def _attempt(self, fields: list[str], attempt: int) -> tuple[int, bool]:
        log_path = self.logs / f"{fields[0]}.{attempt}.log"
        with open(log_path, "wb") as out:
            env = dict(self.env if self.env is not None else os.environ, TMPDIR=str(self.tmp))
            env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
            with self.running_lock:
                if self.stopping:
                    return -signal.SIGTERM, False
                proc = subprocess.Popen(["bash", str(self.directory / START_FILE), *fields], cwd=self.directory,
                                        stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
                self.running.add(proc)
            try:
                return self._wait(proc)
            finally:
                with self.running_lock:
                    self.running.discard(proc)

    def _wait(self, proc: subprocess.Popen) -> tuple[int, bool]:
        """The job's exit code, and whether ``preempt`` killed it."""
        with self.rng_lock:
            kill_at = self.rng.uniform(0, self.preempt_within) if self.rng.random() < self.preempt else None
        killed = False
        if kill_at is not None:
            try:
                proc.wait(timeout=kill_at)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)   # no warning: OAR's best-effort kill
                killed = True
        return proc.wait(), killed
