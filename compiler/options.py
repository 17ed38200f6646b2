"""CompileOptions: every setting a compile reads, read once when a Session (or a compile) starts.

The compile's `FLOWC_*` variables are read here and nowhere deeper: the Session makes
one CompileOptions from its arguments and the environment, and passes it to
the pipeline, the target's passes, its build and its load. Changing a
variable after a Session was made changes nothing for that Session. The
run-time variables (pool bytes, fast run, threads) are read the same way, into
a RunOptions (Note [run options] in runtime/options.py), when the Session starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class CompileOptions:
    optimize: bool = True  # run the shared pipeline (FLOWC_OPT=0: run the IR exactly as lowered)
    fast_math: bool = False  # FLOWC_FAST_MATH=1: unsafe float rewrites and LLVM fast-math flags
    profile: bool = False  # FLOWC_PROFILE=1: time each kernel of the compiled code
    verify: bool = False  # FLOWC_VERIFY=1: run the verifier after every pass (the test suite sets it)
    dump_dir: str | None = None  # FLOWC_DUMP_IR=DIR: the IR after every pass, as numbered files
    log_compile: bool = False  # FLOWC_LOG=compile: a progress line per compile step on stderr
    log_recompiles: bool = False  # FLOWC_LOG=recompiles: why a jitted function compiles again (compiler/jit.py)
    cache_dir: str | None = None  # FLOWC_CACHE_DIR: the compiled libraries' folder (None: the default one)
    vector_bytes: int | None = None  # schedule for this vector width (flowc opt --vector-bytes); None: the host's
    max_kernel_size: int | None = None  # fusion's limit (flowc opt --max-kernel-size); None: MAX_KERNEL_SIZE
    # FLOWC_PARTITION=1: one process runs a graph placed on tasks partitioned, every task in it, as the
    # ranks of mpiexec would (compiler/partitioned_run.py): to read the partitions without MPI
    partition: bool = False
    # FLOWC_TIERS=0: a jitted function compiles its optimized code before its first call returns, not a
    # quick tier first (Note [tiered compilation] in passes/schedule.py)
    tiers: bool = True
    # FLOWC_AUTOTUNE=0: on a GPU, kernels run the schedule's heuristic configuration, none is timed
    # (Note [autotuning] in codegen/triton/autotune.py)
    autotune: bool = True

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ, **overrides: object) -> CompileOptions:
        """The options the `FLOWC_*` variables ask for; an override that is not None wins over its variable."""
        options = cls(
            optimize=environ.get("FLOWC_OPT", "1") != "0",
            fast_math=environ.get("FLOWC_FAST_MATH", "0") == "1",
            profile=environ.get("FLOWC_PROFILE") == "1",
            verify=environ.get("FLOWC_VERIFY") == "1",
            dump_dir=environ.get("FLOWC_DUMP_IR") or None,
            log_compile="compile" in environ.get("FLOWC_LOG", "").split(","),
            log_recompiles="recompiles" in environ.get("FLOWC_LOG", "").split(","),
            cache_dir=environ.get("FLOWC_CACHE_DIR") or None,
            partition=environ.get("FLOWC_PARTITION") == "1",
            tiers=environ.get("FLOWC_TIERS", "1") != "0",
            autotune=environ.get("FLOWC_AUTOTUNE", "1") != "0",
        )
        return replace(options, **{name: value for name, value in overrides.items() if value is not None})
