"""Worker subprocesses that run cases with a per-case timeout.

A case that kills its worker (a signal, an exit) is a "crash", one that
outlives the timeout a "hang"; either way the worker is restarted. Native
code that writes out of bounds may corrupt the heap, or leave garbage that a
later case reads, and so fail a few cases later. So a failure (but a hang)
is confirmed by running its case again, first thing in a fresh worker: if it
fails the same way there, it is the case's; if not, it is reported with
":unconfirmed" added to its signature, and for a crash (when asked) the
worker's earlier cases are run alone to find one that crashes, which goes to
`culprits`.

Work comes as tasks: generators that yield cases and receive their results
(a fuzz seed yields one case, a minimization many); the pool keeps every
worker busy with some task's case.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator, Iterable, Iterator
from typing import Any

from .spec import Case

Task = Generator[Case, dict, Any]
STARTUP_SECONDS = 300  # a fresh cache folder builds the fast-run extension first
JOBS_PER_WORKER = 250  # then restart, so the libraries a worker loaded do not pile up
CONFIRMED = ("crash", "mismatch", "raw-exception")  # verdicts rerun alone before they count
SUSPECTS = 12  # how many of a crashed worker's earlier cases are run alone to find the one that crashes


WORKER = [sys.executable, "-m", "flowc.fuzz.worker"]


def same_failure(result: dict, signature: str) -> bool:
    """Whether `result` fails like `signature`; a crash is a crash, whatever the signal (a corrupted heap
    may abort in malloc one time and fault the next)."""
    if signature.startswith("crash:") and not signature.endswith(":unconfirmed"):
        return result["verdict"] == "crash" and not result["signature"].endswith(":unconfirmed")
    return result.get("signature") == signature


class Worker:
    def __init__(self, env: dict[str, str], command: list[str]):
        self.env = env
        self.jobs = 0
        self.history: list[Case] = []  # what it ran, for finding the case that corrupted it
        self.task: Task | None = None
        self.case: Case | None = None
        self.deadline = 0.0
        self.buffer = b""
        self.closed = False  # its answers ended: it died
        self.log = tempfile.TemporaryFile()  # its stderr: the traceback faulthandler writes when it crashes
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                        env=env)
        ready = self.read_line(time.monotonic() + STARTUP_SECONDS)
        if ready is None or not ready.get("ready"):
            self.stop()
            raise RuntimeError("a fuzz worker did not start (run `python -m flowc.fuzz.worker` to see why)")

    def read_line(self, deadline: float) -> dict | None:
        """The next answer, or None if the worker died or the deadline passed first."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while b"\n" not in self.buffer:
                # Past the deadline, one poll still: an answer may be waiting while the parent was busy.
                if not selector.select(max(deadline - time.monotonic(), 0)):
                    return None
                chunk = os.read(self.process.stdout.fileno(), 1 << 16)
                if not chunk:
                    self.closed = True
                    return None
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def submit(self, task: Task, case: Case, timeout: float) -> None:
        self.task, self.case = task, case
        self.jobs += 1
        self.history = self.history[-SUSPECTS:] + [case]
        self.deadline = time.monotonic() + timeout
        self.process.stdin.write((json.dumps({"id": self.jobs, "case": case.to_json()}) + "\n").encode())
        self.process.stdin.flush()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # our own child, by its handle
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.log):
            stream.close()

    def last_words(self, limit: int = 1500) -> str:
        """The end of what the worker wrote to stderr."""
        self.log.seek(0, os.SEEK_END)
        self.log.seek(max(0, self.log.tell() - limit))
        return self.log.read().decode(errors="replace").strip()

    def death(self, hung: bool) -> dict:
        """The result of the case that was running when the worker hung, or closed its answers and died."""
        if hung:
            self.process.kill()
            self.process.wait()
            return {"verdict": "hang", "signature": "hang", "detail": "no answer within the timeout"}
        try:
            code = self.process.wait(timeout=30)  # its output closed as it died: wait for its status
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return {"verdict": "crash", "signature": "crash:closed", "detail": "the worker closed its output"}
        name = signal.Signals(-code).name if code < 0 else f"exit {code}"
        return {"verdict": "crash", "signature": f"crash:{name}",
                "detail": f"the worker died: {name}\n{self.last_words()}".strip()}


class Pool:
    def __init__(self, workers: int, timeout: float, env: dict[str, str] | None = None,
                 command: list[str] = WORKER, find_culprits: bool = False):
        self.command = command  # the worker program (tests put a stand-in here)
        self.size = workers
        self.timeout = timeout
        self.env = {**os.environ, **(env or {})}
        self.workers: list[Worker] = []
        self.find_culprits = find_culprits
        self.culprits: list[tuple[Case, dict]] = []  # earlier cases that crash alone (module docstring)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()

    def run(self, tasks: Iterable[Task]) -> Iterator[Any]:
        """Drive `tasks`, several at once; yield each one's return value as it finishes."""
        pending = iter(tasks)
        waiting: list[tuple[Task, Case]] = []  # tasks with a case ready and no worker yet
        busy: list[Worker] = []
        while True:
            while len(waiting) < self.size:
                task = next(pending, None)
                if task is None:
                    break
                finished, case = self.advance(task, None)
                if finished:
                    yield case
                else:
                    waiting.append((task, case))
            if not waiting and not busy:
                return
            while waiting and len(busy) < self.size:
                worker = self.idle_worker(busy)
                worker.submit(*waiting.pop(0), self.timeout)
                busy.append(worker)
            worker, result = self.next_answer(busy)
            busy.remove(worker)
            if result["verdict"] in CONFIRMED:
                result = self.confirm(worker, result)
            finished, value = self.advance(worker.task, result)
            if finished:
                yield value
            else:
                waiting.insert(0, (worker.task, value))

    @staticmethod
    def advance(task: Task, result: dict | None) -> tuple[bool, Any]:
        """(True, return value) if the task is done, else (False, its next case)."""
        try:
            return False, task.send(result) if result is not None else next(task)
        except StopIteration as stop:
            return True, stop.value

    def idle_worker(self, busy: list[Worker]) -> Worker:
        for worker in self.workers:
            if worker not in busy:
                if worker.jobs >= JOBS_PER_WORKER or worker.process.poll() is not None:
                    self.replace(worker)
                    return self.workers[-1]
                return worker
        self.workers.append(Worker(self.env, self.command))
        return self.workers[-1]

    def replace(self, worker: Worker) -> None:
        worker.stop()
        self.workers.remove(worker)
        self.workers.append(Worker(self.env, self.command))

    def next_answer(self, busy: list[Worker]) -> tuple[Worker, dict]:
        with selectors.DefaultSelector() as selector:
            for worker in busy:
                selector.register(worker.process.stdout, selectors.EVENT_READ, worker)
            while True:
                for worker in busy:  # an answer may already sit in a buffer
                    if b"\n" in worker.buffer:
                        return worker, worker.read_line(worker.deadline)["result"]
                left = min(w.deadline for w in busy) - time.monotonic()
                events = selector.select(max(left, 0))
                if not events:
                    late = min(busy, key=lambda w: w.deadline)
                    return late, self.retire(late, hung=True)
                worker = events[0][0].data
                answer = worker.read_line(worker.deadline)
                if answer is None:
                    return worker, self.retire(worker, hung=not worker.closed)
                return worker, answer["result"]

    def alone(self, case: Case) -> dict:
        """The result of `case` run first thing in a fresh worker."""
        worker = Worker(self.env, self.command)
        worker.submit(None, case, self.timeout)
        answer = worker.read_line(worker.deadline)
        result = answer["result"] if answer is not None else worker.death(hung=not worker.closed)
        worker.stop()
        return result

    def confirm(self, worker: Worker, result: dict) -> dict:
        """The failure as the case gives it alone, or the failure marked unconfirmed (module docstring)."""
        again = self.alone(worker.case)
        if same_failure(again, result["signature"]):
            return again
        note = f"run alone in a fresh worker it gave {again['signature']}"
        if result["verdict"] == "crash" and self.find_culprits:
            for suspect in reversed(worker.history[:-1]):
                found = self.alone(suspect)
                if found["verdict"] == "crash":
                    self.culprits.append((suspect, found))
                    note += f"; seed {suspect.seed}, run before it in the same worker, crashes alone"
                    break
        return {**result, "signature": result["signature"] + ":unconfirmed", "detail": f"{result['detail']}\n{note}"}

    def retire(self, worker: Worker, hung: bool) -> dict:
        """The dead or hung worker's verdict on its case; a fresh worker takes its place later."""
        result = worker.death(hung)
        worker.stop()
        self.workers.remove(worker)
        return result
