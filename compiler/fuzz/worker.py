"""A worker process: reads cases as JSON lines on stdin, answers a result line for each.

The parent (runner.py) times each case and restarts a worker that crashed or
hung. Answers go out on a duplicate of the original stdout; stdout itself is
pointed at stderr, so whatever flowc or native code prints cannot garble them.
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys

import numpy as np


def warm_up() -> None:
    """Load llvmlite and build the fast-run extension now, not inside a timed case."""
    import flowc as fc

    graph = fc.Graph()
    with graph.as_default():
        x = fc.placeholder(fc.float32, [None], name="x")
        y = fc.reduce_sum(x * 2.0)
    with fc.Session(graph=graph, target="cpu") as session:
        session.run(y, {x: np.ones(3, np.float32)})
        session.run(y, {x: np.ones(3, np.float32)})


def main() -> None:
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    faulthandler.enable()  # a crash leaves the Python stack on stderr, which the parent reports
    from .execute import run_case
    from .spec import Case

    warm_up()
    answers.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        job = json.loads(line)
        result = run_case(Case.from_json(job["case"]))
        answers.write(json.dumps({"id": job["id"], "result": result}) + "\n")


if __name__ == "__main__":
    main()
