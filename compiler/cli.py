"""The `flowc` command.

    flowc opt FILE.ir [--passes cse,dce] [--fast-math] [--timing]   run passes on IR text, print IR text
              [--target cpu|gpu]                                 then the target's own passes
              [--vector-bytes 16|32|64]                          ... scheduled for that vector width
              [--max-kernel-size N]                              ... fusing at most N into one kernel
              [--segments]        print each function cut at its data_dims instead (compiler/data_sized_run.py)
    flowc ir GRAPH.json --fetch loss:0 [--feed x:0 ...] [--no-opt]  print the IR a Session run would compile
    flowc compile file.py:fn --input x=float32[None,784] ... -o DIR/NAME    DIR/libNAME.so + DIR/NAME.h
    flowc compile GRAPH.json --feed x --fetch loss --fetch train -o DIR/NAME
              [--variables state|constants] [--target cpu]
    flowc run -n N [--timeout S] script.py [args]   N MPI ranks of a script (compiler/distribute/launch.py)

FILE may be '-' for standard input. Without --passes, `opt` runs the default
pipeline; pass names are those of flowc.passes.PASSES.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from flowc.ir.errors import FlowcError, ParseError
from flowc.ir.parser import parse_module
from flowc.ir.printer import print_module
from flowc.ir.verifier import verify
from flowc.passes import PassManager, default_pipeline, optimize, passes_by_name

from .options import CompileOptions
from .targets import target_named


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flowc", description="flowc: dataflow graphs to fused native code")
    commands = parser.add_subparsers(dest="command", required=True)
    opt = commands.add_parser("opt", help="run passes on IR text and print the result")
    opt.add_argument("file", help="IR text file, or - for standard input")
    opt.add_argument("--passes", help="comma-separated pass names (default: the default pipeline)")
    opt.add_argument("--fast-math", action="store_true", help="allow rewrites that change NaN, inf or -0.0 results")
    opt.add_argument("--timing", action="store_true", help="print each pass's wall time to standard error")
    opt.add_argument("--target", help="then run this target's own passes "
                                      "(cpu: fuse ... plan-memory; gpu: fuse ... schedule-gpu)")
    opt.add_argument("--vector-bytes", type=int, choices=(16, 32, 64),
                     help="schedule for this vector width rather than the host's (tests that print schedules)")
    opt.add_argument("--segments", action="store_true",
                     help="print each function as the segments a run is cut into at its data_dims")
    opt.add_argument("--max-kernel-size", type=int,
                     help="fuse at most this much into one kernel (Note [kernel size limit]; tests that show the cut)")
    ir = commands.add_parser("ir", help="print the IR of a run of a graph_def JSON file")
    ir.add_argument("graph", help="graph_def JSON file (fc.write_graph)")
    ir.add_argument("--fetch", action="append", required=True, help="tensor or op name to fetch (repeatable)")
    ir.add_argument("--feed", action="append", default=[], help="tensor name that the run feeds (repeatable)")
    ir.add_argument("--no-opt", action="store_true", help="print the IR as lowered, before the pipeline")
    add_compile_command(commands)
    add_run_command(commands)
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return run_job(args)
        text = {"opt": run_opt, "ir": run_ir, "compile": run_compile}[args.command](args)
    except FlowcError as error:
        print(f"flowc: error: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


def read_text(path: str, what: str) -> str:
    """A file's text ('-': standard input); a file that is missing, unreadable or not UTF-8 is a
    FlowcError, which main() prints as one line."""
    try:
        if path == "-":
            stream = getattr(sys.stdin, "buffer", None)
            data = stream.read() if stream is not None else sys.stdin.read().encode()
        else:
            with open(path, "rb") as file:
                data = file.read()
    except OSError as error:
        raise FlowcError(f"cannot read {what} {path!r}: {error.strerror or error}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ParseError(f"line {line}: not UTF-8 text (byte {data[error.start]:#04x} at offset {error.start})",
                         where=path) from None


def run_opt(args: argparse.Namespace) -> str:
    source = read_text(args.file, "IR file")
    module = parse_module(source, source=args.file)
    if not module.functions:  # nothing to optimize: surely not the file that was meant
        raise ParseError("no function: IR text holds functions such as 'func @main(%x: f32[4]) -> f32[4] { ... }'",
                         where=args.file)
    verify(module)
    names = [n for n in args.passes.split(",") if n] if args.passes is not None else None
    passes = passes_by_name(names, args.fast_math) if names is not None else default_pipeline(args.fast_math)
    # The command's flags win over the variables; FLOWC_DUMP_IR still dumps each pass.
    options = CompileOptions.from_environment(fast_math=args.fast_math, vector_bytes=args.vector_bytes,
                                              max_kernel_size=args.max_kernel_size)
    if args.target is not None:
        passes += target_named(args.target).passes(options)
    report = PassManager(passes, verify_each=True, dump_dir=options.dump_dir).run(module)
    if args.timing:
        print(report, file=sys.stderr)
    if args.segments:  # Note [data-dependent sizes]
        from .data_sized_run import describe, split

        return "\n".join(describe(function, split(function)) for function in module)
    return print_module(module)


def run_ir(args: argparse.Namespace) -> str:
    from .graph import Graph
    from .graph_def import import_graph_def
    from .lowering import lower

    graph = Graph()
    with graph.as_default():
        import_graph_def(read_text(args.graph, "graph_def file"), name="")
    elements = [graph.as_graph_element(name) for name in args.fetch]
    tensors = [e for e in elements if not hasattr(e, "outputs")]
    targets = [e for e in elements if hasattr(e, "outputs")]
    feeds = [graph.get_tensor_by_name(n if ":" in n else f"{n}:0") for n in args.feed]
    lowered = lower(graph, tensors, targets, feeds)
    if not args.no_opt:
        options = CompileOptions.from_environment()
        optimize(lowered.module, verify_each=options.verify, dump_dir=options.dump_dir)
    return print_module(lowered.module)


def add_compile_command(commands: argparse._SubParsersAction) -> None:
    compile_ = commands.add_parser("compile", help="export a function or a graph_def as DIR/libNAME.so + DIR/NAME.h")
    compile_.add_argument("source", help="file.py:function, or a graph_def JSON file (fc.write_graph)")
    compile_.add_argument("-o", "--output", required=True, help="DIR/NAME: writes DIR/libNAME.so and DIR/NAME.h")
    compile_.add_argument("--input", action="append", default=[], metavar="NAME=DTYPE[DIMS]",
                          help="a function argument's spec, e.g. x=float32[None,784] (repeatable, one per argument)")
    compile_.add_argument("--feed", action="append", default=[], help="graph_def: a tensor the C API takes as input")
    compile_.add_argument("--fetch", action="append", default=[],
                          help="graph_def: a tensor it outputs, or an op it runs")
    compile_.add_argument("--variables", choices=("state", "constants"), default="state",
                          help="keep variables in the context, updated by each run (state), or bake them in")
    compile_.add_argument("--target", choices=("cpu",), default="cpu", help="the target (cpu)")


def run_compile(args: argparse.Namespace) -> str:
    from .aot.command import compile_source

    return compile_source(args.source, args.output, args.input, args.feed, args.fetch, args.variables)


def add_run_command(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="run a script on N MPI ranks (the mpich wheel's mpiexec)")
    run.add_argument("-n", "--ranks", type=int, default=1, help="how many ranks (processes) to start")
    run.add_argument("--timeout", type=float, help="end the job after this many seconds (a hang) with status 124")
    run.add_argument("script", help="the Python script each rank runs")
    run.add_argument("arguments", nargs=argparse.REMAINDER, help="the script's own arguments")


def run_job(args: argparse.Namespace) -> int:
    from .distribute.launch import run

    return run(args.ranks, args.script, args.arguments, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
