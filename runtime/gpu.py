"""The gpu target's executable: runs a scheduled function's ops in order on torch tensors.

The function it runs holds, at the top level and in the regions of cond and
while, only kernels (fusion ops), views, constants and control flow (passes/
fusion.py). So a run is a walk over those ops with a map from IR values to
torch tensors:

  fusion    its results allocated (torch.empty, of the sizes ir/shapes.py gives),
            its kernel launched on its operands and results (one launch, no
            Python per element);
  view      a torch view of its operand (reshape, expand_dims, squeeze: a
            contiguous buffer renamed), no copy;
  constant  a device tensor made once, when the executable is made;
  cond      its predicate read back to the host, then the chosen region's ops;
  while     its condition region run and read back each turn, then the body's.

Tensors live on "cuda" when torch has a GPU; otherwise on the CPU, where the
kernels run in Triton's interpreter (the module was imported with
interpret=True). The sizes of every value come from the argument shapes, once
per set of shapes (Note [fixed shapes in control flow] in ir/shapes.py), which
also refuses, before anything runs, a set of shapes a kernel cannot take.

Note [state on the device]
`run_on_device` takes numpy arrays or device tensors and gives back device
tensors: the Session keeps a variable's value as the tensor the last run
wrote and hands it to the next run as it is, so a training loop copies no
parameter between host and device per step (compiler/session.py's `_call`). Feeds
may be device arrays too (torch tensors, or anything with __dlpack__), checked
by their dtype and shape and used where they are (compiler/feeds.py's
check_device_feed); numpy feeds are copied to the device once per run.
Every returned value is a kernel's fresh result (passes/memory.py's
materialize_results), never an argument or another result, so a stored
state tensor is never written by a later run: kernels write only the
results allocated for them.
"""

from __future__ import annotations

import threading

from typing import Any, Callable, Sequence

import numpy as np

from flowc.ir import Block, Function, Operation, Value
from flowc.ir.errors import FlowcError
from flowc.ir.shapes import Shapes, check_no_hidden_broadcast, propagate_shapes

TORCH_DTYPES = ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")
TORCH_DTYPES += ("uint16",)  # torch >= 2.3: storage, copies and DLPack, which is all the gpu runtime asks of it


def device_name() -> str:
    """Where the gpu target's tensors live: "cuda" with a GPU, else "cpu" (kernels interpreted)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def host_array(value: Any) -> np.ndarray:
    """A numpy array of `value`, a numpy array (as it is) or a torch tensor (copied to the host)."""
    if isinstance(value, np.ndarray):
        return value
    import torch

    if value.dtype == torch.bfloat16:  # numpy has no bfloat16: widened, exactly
        value = value.float()
    return value.detach().cpu().numpy()


class GpuExecutable:
    """A function of the gpu target, callable on numpy arrays (Executable) or on device tensors."""

    fresh_outputs = True  # every result is a kernel's own allocation (Note [state on the device])
    state_on_device = True  # run_on_device takes and gives device tensors (Note [state on the device])
    # How many argument shapes keep their sizes (None: all), the oldest let go first, as NativeExecutable's: a
    # Session fed ever new batch sizes must not keep them all; a segment after a cut at a data-dependent
    # size keeps fewer (Note [data-dependent sizes] in compiler/data_sized_run.py).
    max_layouts: int | None = 64

    def __init__(self, function: Function, kernels: Any, names: dict[Operation, str], device: str,
                 flagged: Sequence[Operation] = (), failure: Callable[[Operation, int, Shapes], None] | None = None,
                 was_cached: bool = False):
        """`kernels`: the loaded TritonModule; `names`: each fusion op's kernel name in it; `flagged`: the
        kernels that take error flags, `failure` raises for one that set them (Note [error flags] in
        codegen/triton/kernel.py); `was_cached`: the kernels were read from the disk cache, not emitted
        by this compile."""
        import torch

        self.function = function
        self.was_cached = was_cached
        self.kernels = kernels
        self.names = names
        self.device = device
        self._torch = torch
        self._dtypes = {name: getattr(torch, name) for name in TORCH_DTYPES}
        self._constants = {op.results[0]: self._tensor(op.attributes["value"])
                           for op in function.walk() if op.name == "constant" and not _in_kernel(op)}
        self._shapes: dict[tuple[tuple[int, ...], ...], Shapes] = {}
        # A pair [flag, detail] per flagged kernel, zeroed before each run and read after it; a buffer per
        # thread, so that concurrent runs of one Session never read each other's flags.
        self._flagged = {op: row for row, op in enumerate(flagged)}
        self._failure = failure
        self._per_thread = threading.local()
        self._run_op: dict[str, Callable[[Operation, dict, Shapes], list]] = {
            "fusion": self._fusion, "cond": self._cond, "while": self._while, "constant": self._constant}

    def __call__(self, args: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [host_array(result) for result in self.run_on_device(args)]

    def run_on_device(self, args: Sequence[Any]) -> list[Any]:
        """The function's results as device tensors, from numpy arrays or device tensors."""
        tensors = [self._tensor(a) for a in args]
        key = tuple(tuple(t.shape) for t in tensors)
        shapes = self._shapes.get(key)
        if shapes is None:
            if self.max_layouts is not None and len(self._shapes) >= self.max_layouts:
                del self._shapes[next(iter(self._shapes))]  # the oldest (Note [data-dependent sizes])
            shapes = self._shapes[key] = self._sizes(key)
        if not self._flagged:
            return self._run_block(self.function.entry, tensors, shapes)
        errors = self._errors()
        errors.zero_()
        results = self._run_block(self.function.entry, tensors, shapes)
        self._check_errors(errors, shapes)
        return results

    def _errors(self) -> Any:
        """This thread's error flags (made on its first run)."""
        errors = getattr(self._per_thread, "errors", None)
        if errors is None:
            errors = self._per_thread.errors = self._torch.zeros((len(self._flagged), 2), dtype=self._torch.int64,
                                                                 device=self.device)
        return errors

    def _check_errors(self, errors: Any, shapes: Shapes) -> None:
        """Raise for the first flagged kernel (in the function's order) that found a bad index or a false
        check; a later kernel ran on the clamped values, and its flags say nothing more."""
        errors = errors.cpu().tolist()
        for op, row in self._flagged.items():
            if errors[row][0]:
                assert self._failure is not None
                self._failure(op, errors[row][1], shapes)

    def close(self) -> None:
        self._constants.clear()
        self._shapes.clear()

    def _sizes(self, arg_shapes: tuple[tuple[int, ...], ...]) -> Shapes:
        shapes = propagate_shapes(self.function, arg_shapes, "the gpu target")
        for op in self.names:
            check_no_hidden_broadcast(op, shapes)
        return shapes

    def _tensor(self, value: Any) -> Any:
        """`value` as a contiguous tensor on the device (a tensor already there passes untouched)."""
        torch = self._torch
        if not isinstance(value, (torch.Tensor, np.ndarray)) and hasattr(value, "__dlpack__"):
            value = torch.from_dlpack(value)  # a CuPy or JAX array: the same memory, as a tensor
        if isinstance(value, torch.Tensor):
            if value.device.type != self.device:
                value = value.to(self.device)
            return value.contiguous()  # itself when it already is
        array = np.asarray(value, order="C")
        if not array.flags.writeable:  # torch has no read-only tensors (kernels only read this one, but
            array = array.copy()       # torch warns)
        return torch.from_numpy(array).to(self.device)  # on the CPU: the array's own memory, read only by kernels

    # -- ops ---------------------------------------------------------------------------------------

    def _run_block(self, block: Block, args: Sequence[Any], shapes: Shapes) -> list[Any]:
        values: dict[Value, Any] = dict(zip(block.args, args))
        for op in block.ops:
            if op.is_terminator:
                return [values[v] for v in op.operands]
            run = self._run_op.get(op.name)
            if run is None:  # a view: the checks of the gpu target let nothing else through
                results = [values[op.operands[0]].reshape(shapes[op.results[0]])]
            else:
                results = run(op, values, shapes)
            values.update(zip(op.results, results))
        raise FlowcError(f"block of {self.function.name} has no terminator")

    def _constant(self, op: Operation, values: dict, shapes: Shapes) -> list[Any]:
        return [self._constants[op.results[0]]]

    def _fusion(self, op: Operation, values: dict, shapes: Shapes) -> list[Any]:
        results = [self._torch.empty(shapes[r], dtype=self._dtypes[str(r.type.dtype)], device=self.device)
                   for r in op.results]
        row = self._flagged.get(op)
        scalars = {} if row is None else {"errors": self._per_thread.errors[row]}
        self.kernels.launch(self.names[op], [*(values[v] for v in op.operands), *results], scalars)
        return results

    def _cond(self, op: Operation, values: dict, shapes: Shapes) -> list[Any]:
        flag, *operands = [values[v] for v in op.operands]
        region = op.regions[0] if bool(flag.item()) else op.regions[1]
        return self._run_block(region.entry, operands, shapes)

    def _while(self, op: Operation, values: dict, shapes: Shapes) -> list[Any]:
        condition, body = op.regions
        state = [values[v] for v in op.operands]
        while bool(self._run_block(condition.entry, state, shapes)[0].item()):
            state = self._run_block(body.entry, state, shapes)
        return state


def _in_kernel(op: Operation) -> bool:
    """Whether `op` sits in a fusion region (its kernel makes it; the executable never sees it)."""
    owner = op.parent_op
    while owner is not None:
        if owner.name == "fusion":
            return True
        owner = owner.parent_op
    return False
