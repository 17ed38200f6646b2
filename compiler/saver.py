"""fc.train.Saver and the checkpoint helpers of TensorFlow 1's tf.train.

A Saver saves the values a Session holds for its variables (every global variable by
default: the trainable ones, the optimizer's slots such as Adam's m and v and its beta
powers, and the global step, all Variables in flowc) and restores them into another
Session, so a restored run continues exactly where the saved one stopped. It saves the
Session's run counter of random ops too (beyond TF1), so with the graph's seeds set,
dropout after a restore draws the masks the uninterrupted run drew. The files are
flowc's own (compiler/checkpoint_format.py); the `checkpoint` state file beside them is
TF1's text format:

    model_checkpoint_path: "model.ckpt-20"
    all_model_checkpoint_paths: "model.ckpt-10"
    all_model_checkpoint_paths: "model.ckpt-20"

    >>> import numpy as np, os, tempfile, flowc as fc
    >>> folder = tempfile.mkdtemp()
    >>> with fc.Graph().as_default():
    ...     w = fc.Variable(np.float32([1.5, 2.5]), name="w")
    ...     saver = fc.train.Saver()
    ...     with fc.Session() as sess:
    ...         _ = sess.run(fc.global_variables_initializer())
    ...         path = saver.save(sess, os.path.join(folder, "model.ckpt"), global_step=7)
    >>> os.path.basename(path), os.path.basename(fc.train.latest_checkpoint(folder))
    ('model.ckpt-7', 'model.ckpt-7')
    >>> fc.train.load_variable(folder, "w")
    array([1.5, 2.5], dtype=float32)
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import checkpoint_format as fmt
from .checkpoint_format import CheckpointError
from .graph import Tensor
from .sources import user_location
from .state_ops import Variable, global_variables

STATE_FILE = "checkpoint"


class Saver:
    """Saves and restores variables: TF1's `tf.train.Saver`.

    `var_list` is a list of Variables (saved under their op names) or a dict from
    checkpoint names to Variables; by default every global variable that exists when the
    Saver is built. `max_to_keep` checkpoints are kept (None or 0: all are kept on disk and
    the state file names only the newest); older ones are deleted as new ones are saved,
    except one per `keep_checkpoint_every_n_hours`.
    """

    def __init__(self, var_list: Any = None, reshape: bool = False, sharded: bool = False, max_to_keep: int | None = 5,
                 keep_checkpoint_every_n_hours: float = 10000.0, name: str | None = None,
                 restore_sequentially: bool = False, saver_def: Any = None, builder: Any = None,
                 defer_build: bool = False, allow_empty: bool = False, write_version: int = 2,
                 pad_step_number: bool = False, save_relative_paths: bool = False, filename: str | None = None):
        self._variables = _named(global_variables() if var_list is None else var_list)
        if not self._variables and not allow_empty:
            raise CheckpointError("no variables to save: the graph has none (or var_list is empty); "
                                  "pass allow_empty=True for a Saver that saves nothing",
                                  op="Saver", where=user_location())
        self._max_to_keep = max_to_keep
        self._keep_every = keep_checkpoint_every_n_hours * 3600
        self._next_kept = time.time() + self._keep_every
        self._pad_step_number = pad_step_number
        self._relative = save_relative_paths
        self._last: list[tuple[str, float]] = []  # (prefix, time saved), oldest first
        self.name = name or "save"

    @property
    def last_checkpoints(self) -> list[str]:
        """The prefixes of the checkpoints this Saver keeps, oldest first."""
        return [path for path, _ in self._last]

    def set_last_checkpoints_with_time(self, last_checkpoints_with_time: list[tuple[str, float]]) -> None:
        self._last = list(last_checkpoints_with_time)

    def recover_last_checkpoints(self, checkpoint_paths: list[str]) -> None:
        """Take over the checkpoints a previous Saver kept (after a restart), oldest first."""
        now = time.time()
        self._last = [(path, now) for path in checkpoint_paths if fmt.exists(path)]

    # -- save ------------------------------------------------------------------

    def save(self, sess: Any, save_path: str, global_step: Any = None, latest_filename: str | None = None,
             meta_graph_suffix: str = "meta", write_meta_graph: bool = True, write_state: bool = True,
             strip_default_attrs: bool = False, save_debug_info: bool = False) -> str:
        """Write the variables' values in `sess` to `save_path` (plus '-<global_step>'); returns that prefix."""
        prefix = save_path
        if global_step is not None:
            step = _step_number(sess, global_step)
            prefix = f"{save_path}-{step:08d}" if self._pad_step_number else f"{save_path}-{step}"
        self._check_session(sess, "save")
        values = {name: sess._value_of(var.op) for name, var in self._variables.items()}
        fmt.write(prefix, values, int(sess._step))
        if write_meta_graph:
            self._write_meta_graph(sess, f"{prefix}.{meta_graph_suffix}")
        if write_state:
            doomed = self._record(prefix)
            folder = os.path.dirname(os.path.abspath(save_path))
            update_checkpoint_state(folder, prefix, self.last_checkpoints if self._max_to_keep else [prefix],
                                    latest_filename, self._relative)
            for old in doomed:
                fmt.remove(old)
        return prefix

    def _record(self, prefix: str) -> list[str]:
        """Add `prefix` as the newest checkpoint; returns the old ones past max_to_keep, to delete once the
        state file no longer names them (one per keep_checkpoint_every_n_hours is kept for good)."""
        self._last = [(p, t) for p, t in self._last if p != prefix] + [(prefix, time.time())]
        doomed = []
        while self._max_to_keep and len(self._last) > self._max_to_keep:
            old, saved = self._last.pop(0)
            if saved > self._next_kept:
                self._next_kept += self._keep_every
            else:
                doomed.append(old)
        return doomed

    def _write_meta_graph(self, sess: Any, path: str) -> None:
        try:
            text = json.dumps(sess.graph.as_graph_def(), allow_nan=False)
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"cannot write the graph to {path!r} ({error}); pass write_meta_graph=False",
                                  op="Saver.save", where=user_location()) from None
        fmt.write_atomically(path, text.encode())

    # -- restore ---------------------------------------------------------------

    def restore(self, sess: Any, save_path: str | None) -> None:
        """Set every variable of this Saver in `sess` to its value in checkpoint `save_path`."""
        if save_path is None:
            raise CheckpointError("cannot restore from save_path None (fc.train.latest_checkpoint found no "
                                  "checkpoint?)", op="Saver.restore", where=user_location())
        self._check_session(sess, "restore")
        try:
            values = fmt.read(save_path, list(self._variables))
            counter = fmt.read_index(save_path).random_counter
        except CheckpointError as error:
            raise error.located(op="Saver.restore", where=user_location()) from None
        for name, var in self._variables.items():
            value = values[name]
            if value.dtype != var.dtype.np or value.shape != var.shape:
                raise CheckpointError(f"checkpoint {save_path!r} holds {name!r} as {value.dtype.name}"
                                      f"{list(value.shape)}, the variable is {var.dtype.name}{list(var.shape)}",
                                      op="Saver.restore", where=user_location())
        for name, var in self._variables.items():  # only after every value was checked: all or nothing
            sess._store(var.op, values[name])
        if counter is not None:  # in place: a fast run holds this array (compiler/session.py)
            sess._step[...] = counter

    def _check_session(self, sess: Any, what: str) -> None:
        for var in self._variables.values():
            if var.graph is not sess.graph:
                raise CheckpointError(f"variable {var.op.name!r} belongs to another graph than the Session's; "
                                      "build the Saver in the Session's graph", op=f"Saver.{what}",
                                      where=user_location())


def _named(var_list: Any) -> dict[str, Variable]:
    """Checkpoint name -> Variable, from a dict or a list of Variables."""
    if isinstance(var_list, dict):
        items = list(var_list.items())
    else:
        items = [(var.op.name, var) for var in var_list]
    named: dict[str, Variable] = {}
    for name, var in items:
        if not isinstance(var, Variable):
            raise CheckpointError(f"var_list holds {var!r}, expected fc.Variable", op="Saver", where=user_location())
        if name in named and named[name] is not var:
            raise CheckpointError(f"two variables would be saved under the name {name!r}", op="Saver",
                                  where=user_location())
        named[name] = var
    return named


def _step_number(sess: Any, global_step: Any) -> int:
    if isinstance(global_step, (Tensor, Variable)):
        global_step = sess.run(global_step)
    return int(global_step)


def import_meta_graph(meta_graph_or_file: Any, clear_devices: bool = False, import_scope: str | None = None,
                      **kwargs: Any) -> Saver | None:
    """Add the graph a Saver wrote beside a checkpoint (`<prefix>.meta`, or its JSON text or dict) to the default
    graph, under `import_scope` (none by default, so its names stay as saved); returns a Saver of the variables
    it brought, or None where it brought none."""
    from .graph_def import import_graph_def

    document = meta_graph_or_file
    if isinstance(document, str) and os.path.isfile(document):
        with open(document) as f:
            document = f.read()
    before = set(global_variables())
    import_graph_def(document, name=import_scope or "")
    brought = [var for var in global_variables() if var not in before]
    return Saver(brought) if brought else None


# -- the state file -------------------------------------------------------------


@dataclass
class CheckpointState:
    """TF1's CheckpointState: the newest checkpoint and all those kept, oldest first."""

    model_checkpoint_path: str
    all_model_checkpoint_paths: list[str] = field(default_factory=list)


def update_checkpoint_state(save_dir: str, model_checkpoint_path: str,
                            all_model_checkpoint_paths: list[str] | None = None,
                            latest_filename: str | None = None, save_relative_paths: bool = False) -> None:
    """Write `save_dir`/checkpoint (atomically), naming the newest checkpoint and all those kept."""
    paths = list(all_model_checkpoint_paths or [])
    if not paths or paths[-1] != model_checkpoint_path:
        paths.append(model_checkpoint_path)

    def shown(path: str) -> str:  # absolute, or relative to the folder: what get_checkpoint_state joins it to
        absolute = os.path.abspath(path)
        return os.path.relpath(absolute, save_dir) if save_relative_paths else absolute

    lines = [f"model_checkpoint_path: {_quote(shown(model_checkpoint_path))}"]
    lines += [f"all_model_checkpoint_paths: {_quote(shown(p))}" for p in paths]
    fmt.write_atomically(os.path.join(save_dir, latest_filename or STATE_FILE), ("\n".join(lines) + "\n").encode())


def get_checkpoint_state(checkpoint_dir: str, latest_filename: str | None = None) -> CheckpointState | None:
    """The state file of `checkpoint_dir`, or None where there is none; relative paths are under the folder."""
    path = os.path.join(checkpoint_dir, latest_filename or STATE_FILE)
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    newest, kept = None, []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, _, value = line.partition(":")
        try:
            value = json.loads(value.strip())
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, str) or key.strip() not in ("model_checkpoint_path", "all_model_checkpoint_paths"):
            raise CheckpointError(f"{path!r} line {number} is not a checkpoint state line: {line!r}",
                                  op="get_checkpoint_state", where=user_location())
        value = value if os.path.isabs(value) else os.path.join(checkpoint_dir, value)
        if key.strip() == "model_checkpoint_path":
            newest = value
        else:
            kept.append(value)
    if newest is None:
        raise CheckpointError(f"{path!r} names no model_checkpoint_path", op="get_checkpoint_state",
                              where=user_location())
    return CheckpointState(newest, kept)


def latest_checkpoint(checkpoint_dir: str, latest_filename: str | None = None) -> str | None:
    """The prefix of the newest checkpoint the state file of `checkpoint_dir` names, or None."""
    state = get_checkpoint_state(checkpoint_dir, latest_filename)
    if state is None or not fmt.exists(state.model_checkpoint_path):
        return None
    return state.model_checkpoint_path


def checkpoint_exists(checkpoint_prefix: str) -> bool:
    return fmt.exists(checkpoint_prefix)


def list_variables(ckpt_dir_or_file: str) -> list[tuple[str, list[int]]]:
    """(name, shape) of every tensor of a checkpoint (or of a folder's newest one), sorted by name."""
    prefix = _prefix(ckpt_dir_or_file, "list_variables")
    try:
        entries = fmt.read_index(prefix).entries
    except CheckpointError as error:
        raise error.located(op="list_variables", where=user_location()) from None
    return sorted((e.name, list(e.shape)) for e in entries)


def load_variable(ckpt_dir_or_file: str, name: str) -> np.ndarray:
    """The value of tensor `name` ('w' or 'w:0') in a checkpoint (or in a folder's newest one)."""
    prefix = _prefix(ckpt_dir_or_file, "load_variable")
    name = name[:-2] if name.endswith(":0") else name
    try:
        return fmt.read(prefix, [name])[name]
    except CheckpointError as error:
        raise error.located(op="load_variable", where=user_location()) from None


def _prefix(ckpt_dir_or_file: str, what: str) -> str:
    if not os.path.isdir(ckpt_dir_or_file):
        return ckpt_dir_or_file
    prefix = latest_checkpoint(ckpt_dir_or_file)
    if prefix is None:
        raise CheckpointError(f"no checkpoint in the folder {ckpt_dir_or_file!r}", op=what, where=user_location())
    return prefix


def _quote(text: str) -> str:
    """A string as the state file's text format writes it (and json.loads reads it back)."""
    return json.dumps(text)
