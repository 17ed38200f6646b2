"""python -m flowc.fuzz --graphs N --seed S --workers K --timeout T --out FILE [--target gpu]

Runs seeds S .. S+N-1 (graph, sizes and data follow from the seed), each on
`reference` and a native target (`cpu`, or `gpu`: Triton's interpreter where
no GPU is) in worker processes, prints a summary line, and writes
each failure's seed with a reproducer (minimized for the first few of each
kind) to FILE. The exit status is 1 if anything failed.
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import sys
import tempfile

from tqdm import tqdm

from .campaign import Failure, Summary, first_of_each_kind, minimize_failures, run_seeds
from .generate import Config, count
from .reproducer import script
from .runner import Pool
from .spec import Case


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m flowc.fuzz", description=__doc__.split("\n\n")[1])
    parser.add_argument("--graphs", type=int, default=1000, help="how many seeds to run")
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a graph may take before it is a hang")
    parser.add_argument("--out", default="fuzz-failures.txt", help="where the failures' reproducers go")
    parser.add_argument("--max-ops", type=int, default=Config.max_ops, help="ops per graph, at most")
    parser.add_argument("--minimize", type=int, default=3, metavar="K",
                        help="minimize the first K failures of each kind (0: none)")
    parser.add_argument("--budget", type=int, default=60, help="trials per minimization")
    parser.add_argument("--target", choices=("cpu", "gpu"), default="cpu",
                        help="the native target compared with reference (gpu without a GPU: Triton's interpreter, "
                             "slow: give it a longer --timeout)")
    return parser.parse_args(argv)


MAX_PRINTED_ELEMENTS = 5000  # an unminimized case with more fed numbers gets a command, not a script


def fed_elements(case: Case, run: int) -> int:
    return sum(count(item.value.shape, case.sizes[run]) for item in case.spec.inputs)


def write_failures(path: str, failures: list[Failure]) -> None:
    with open(path, "w") as out:
        for failure in failures:
            case, result = copy.deepcopy(failure.case), failure.result
            case.spec.gradients = case.spec.gradients and result.get("gradients", True)
            if failure.minimized is not None:
                case, result = failure.minimized, failure.minimized_result
            run = result.get("run", 0) if result.get("run", -1) >= 0 else 0
            first_line = result.get("detail", "").splitlines()[0] if result.get("detail") else ""
            out.write(f"# {'=' * 70}\n# seed {failure.case.seed}: {failure.result['signature']}"
                      f"{' (minimized)' if failure.minimized is not None else ''}\n")
            for line in result.get("detail", "").splitlines():
                out.write(f"#   {line}\n")
            if failure.minimized is None and fed_elements(case, run) > MAX_PRINTED_ELEMENTS:
                out.write(f"# too big to print; to minimize it: python -m flowc.fuzz --seed {case.seed} --graphs 1\n")
                continue
            out.write(script(case, run, f"{result['signature']}: {first_line}") + "\n")


def print_failures(summary: Summary) -> None:
    by_kind: dict[str, list[int]] = {}
    for failure in summary.failures:
        by_kind.setdefault(failure.result["signature"], []).append(failure.case.seed)
    for kind, seeds in sorted(by_kind.items()):
        shown = ", ".join(map(str, seeds[:12])) + (", ..." if len(seeds) > 12 else "")
        print(f"  {kind}: {len(seeds)} (seeds {shown})")


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    config = Config(max_ops=args.max_ops, target=args.target)
    cache = None if os.environ.get("FLOWC_CACHE_DIR") else tempfile.mkdtemp(prefix="flowc-fuzz-cache-")
    env = {"FLOWC_VERIFY": os.environ.get("FLOWC_VERIFY", "1")} | ({"FLOWC_CACHE_DIR": cache} if cache else {})
    try:
        with Pool(args.workers, args.timeout, env) as pool:
            with tqdm(total=args.graphs, unit="graph", file=sys.stderr) as bar:
                def progress(summary: Summary) -> None:
                    bar.update(1)
                    bar.set_postfix(failed=len(summary.failures), refresh=False)

                summary = run_seeds(pool, range(args.seed, args.seed + args.graphs), config, progress)
            chosen = first_of_each_kind(summary.failures, args.minimize)
            if chosen:
                with tqdm(total=len(chosen), desc="minimizing", unit="failure", file=sys.stderr) as bar:
                    minimize_failures(pool, chosen, args.budget, lambda: bar.update(1))
    finally:
        if cache:
            shutil.rmtree(cache, ignore_errors=True)
    print(summary.line())
    print_failures(summary)
    if summary.failures:
        write_failures(args.out, summary.failures)
        print(f"reproducers: {args.out}")
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
