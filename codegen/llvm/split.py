"""Split a module's LLVM IR text into modules of kernels and one for the entry point.

Note [kernels compiled apart]
LLVM's optimizer and code generator cost more than linearly in a module's
size, and a big graph's module is hundreds of kernels. Each kernel (its
functions `kernel{N}_*`) becomes a module of its own with copies of the
internal helpers and constants it uses and every declaration; the entry
point's module declares the kernels it calls. The kernels are called through
function pointers by the thread pool, so nothing is lost by not inlining
across them. A kernel's functions are renamed after the hash of its text with
the kernel number taken out (`flowc_k<hash>_*`, hidden: visible to the other
objects of the shared library only), so kernels that are the same code (the
steps of an unrolled RNN) are one object, and a kernel's object is cached on
disk by that text: an edit to one layer recompiles that layer and the entry.

Note [kernels grouped into modules]
Each module also costs LLVM something whatever its size (a pass pipeline,
an object file, a link input): an unrolled RNN's hundreds of small kernels
(a slice, a bias add) spent more on that than on their code. So kernels
smaller than `group_chars` share a module with their neighbours in the
entry point's order. A group ends after a kernel whose name (its text's
hash) ends in a multiple of KERNELS_PER_GROUP, or once it holds
`group_chars` of text: the cuts follow the kernels' contents, not their
positions, so an edit to one layer changes its own group's text (and the
entry point's) and the groups after it resynchronize at the next such
kernel. A kernel as big as `group_chars` is a module of its own.

The text is llvmlite's printing of a module: a header, then top-level items
that each start at column 0 (a global or a declaration on one line, a
definition from `define` to a line `}`, metadata). A kernel that refers to a
global or function that is neither internal nor its own (never the case
today) leaves the module whole: `split_module` returns None.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

KERNELS_PER_GROUP = 16  # on average, in a group that no size limit cut (Note [kernels grouped into modules])
_KERNEL = re.compile(r'@"kernel(\d+)_')
_SYMBOL = re.compile(r'@"([^"]+)"')
_DEFINED = re.compile(r'^(?:define [^@]*|)@"([^"]+)"')


@dataclass
class Part:
    """One module's text; `name` is the symbol prefix of its kernel (empty for the entry's module)."""

    name: str  # for a group, its first kernel's
    text: str


@dataclass
class _Item:
    text: str
    symbol: str | None  # the global or function it defines, None for declarations and metadata
    internal: bool


def split_module(text: str, group_chars: int = 0) -> list[Part] | None:
    """The entry point's module first, then the distinct kernels, grouped into modules (Note [kernels
    grouped into modules]; `group_chars` 0: one module per kernel); None where it cannot split."""
    header, items = _items(text)
    defined = {item.symbol: item for item in items if item.symbol is not None}
    shared = "".join(item.text for item in items if item.symbol is None)  # declarations, metadata
    kernels: dict[str, list[_Item]] = {}
    for item in items:
        match = _KERNEL.match(item.text, item.text.find("@"))
        if item.symbol is not None and item.text.startswith("define") and match:
            kernels.setdefault(match.group(1), []).append(item)
    if len(kernels) < 2:
        return None
    roots = [item for item in items if item.symbol is not None and not item.internal and not _is_kernel(item)]
    entry = _with_helpers(roots, defined, allow_kernels=True)
    if entry is None:
        return None
    renamed: dict[str, str] = {}
    distinct: dict[str, _Kernel] = {}
    for number, functions in kernels.items():
        helpers = _with_helpers(functions, defined, allow_kernels=False)
        if helpers is None:
            return None
        own = "".join(item.text.replace("define internal ", "define hidden ", 1) for item in functions)
        canonical = "".join(item.text for item in helpers) + own.replace(f'@"kernel{number}_', '@"kernel_')
        name = "flowc_k" + hashlib.sha256(canonical.encode()).hexdigest()[:20]
        renamed[number] = name
        if name not in distinct:
            distinct[name] = _Kernel(name, helpers, own.replace(f'@"kernel{number}_', f'@"{name}_'))
    rename = functools.partial(_KERNEL.sub, lambda m: f'@"{renamed[m.group(1)]}_')
    declarations = dict.fromkeys(rename(_declaration(item)) for functions in kernels.values() for item in functions)
    entry_text = header + shared + "".join(declarations) + rename("".join(item.text for item in entry + roots))
    modules = [_module_text(header + shared, group) for group in _groups(list(distinct.values()), group_chars)]
    return [Part("", entry_text), *(Part(group[0].name, text) for group, text in modules)]


@dataclass
class _Kernel:
    """A distinct kernel: the internal items it uses and its own functions' text, named `name`."""

    name: str
    helpers: list[_Item]
    text: str

    @property
    def size(self) -> int:
        return len(self.text) + sum(len(item.text) for item in self.helpers)


def _groups(kernels: list[_Kernel], group_chars: int) -> list[list[_Kernel]]:
    """Kernels in order, cut into groups (Note [kernels grouped into modules])."""
    groups: list[list[_Kernel]] = []
    current: list[_Kernel] = []
    chars = 0
    for kernel in kernels:
        if kernel.size >= group_chars:  # big enough alone
            groups.append([kernel])
            continue
        current.append(kernel)
        chars += kernel.size
        if chars >= group_chars or int(kernel.name[-4:], 16) % KERNELS_PER_GROUP == 0:
            groups.append(current)
            current, chars = [], 0
    return groups + [current] * bool(current)


def _module_text(prefix: str, group: list[_Kernel]) -> tuple[list[_Kernel], str]:
    """The module of a group: its kernels' helpers, each once, then their functions."""
    helpers = {item.symbol: item.text for kernel in group for item in kernel.helpers}
    return group, prefix + "".join(helpers.values()) + "".join(kernel.text for kernel in group)


def _items(text: str) -> tuple[str, list[_Item]]:
    lines = [line if line.endswith("\n") else line + "\n" for line in text.splitlines(keepends=True)]
    start = next(i for i, line in enumerate(lines) if line.startswith(("define", "declare", "@", "!")))
    items: list[_Item] = []
    current: list[str] = []
    for line in lines[start:]:
        if current:  # inside a definition
            current.append(line)
            if line.startswith("}"):
                items.append(_item("".join(current)))
                current = []
        elif line.startswith("define"):
            current = [line]
        elif line.strip():
            items.append(_item(line))
    return "".join(lines[:start]), items


def _item(text: str) -> _Item:
    if text.startswith(("declare", "!")):
        return _Item(text, None, False)
    match = _DEFINED.match(text)
    first_line = text.split("\n", 1)[0]
    return _Item(text, match.group(1) if match else None, " internal " in f" {first_line} ")


def _is_kernel(item: _Item) -> bool:
    return item.text.startswith("define") and bool(_KERNEL.match(item.text, item.text.find("@")))


def _with_helpers(roots: list[_Item], defined: dict[str, _Item], allow_kernels: bool) -> list[_Item] | None:
    """The internal items that `roots` use, directly or not (kernels only where allowed: they are
    declared); None if they use a non-internal item other than themselves."""
    own = {item.symbol for item in roots}
    needed: dict[str, _Item] = {}
    pending = list(roots)
    while pending:
        for symbol in _SYMBOL.findall(pending.pop().text):
            item = defined.get(symbol)
            if item is None or symbol in own or symbol in needed or (allow_kernels and _is_kernel(item)):
                continue  # declared (in the shared part), a root, already taken, or a declared kernel
            if not item.internal or _is_kernel(item):
                return None
            needed[symbol] = item
            pending.append(item)
    return list(needed.values())


def _declaration(item: _Item) -> str:
    """`declare` for a kernel function defined in another module (its define line, up to the body)."""
    first_line = item.text.split("\n", 1)[0]
    return first_line.replace("define internal ", "declare hidden ", 1).rstrip().removesuffix("{").rstrip() + "\n"
