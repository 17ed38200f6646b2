"""Draws of control flow: fc.cond, fc.case, fc.while_loop (a static trip count, one read from an
unknown dim, one that depends on the loop's own exact values, maximum_iterations), fc.scan,
fc.map_fn, fc.foldl, fc.foldr, and TensorArrays written in a loop or unstacked.

A branch or a loop body is a short expression (BODIES) over the operand `{0}`
or the loop's state and a captured value `{1}` whose shape broadcasts into
the operand's without changing it; some are control flow again (a loop in a
cond branch or a loop body, a cond on the loop counter, a scan in map_fn).
Predicates and value-dependent loop conditions read EXACT values only (a
last-bit difference must not pick another branch or another trip count). A
TensorArray needs its element shape known when the graph is built, so those
draws take values with static shapes.
"""

from __future__ import annotations

from .dims import broadcast_shapes
from .draws import Draws
from .kinds import FLOATS, INTS
from .spec import EXACT, Value, rounding_of

CONTROL_TEMPLATES = {
    "cond": "fc.cond({predicate}, lambda: {then}, lambda: {otherwise})",
    "case": "fc.case([({predicate}, lambda: {then}), ({second}, lambda: {middle})], default=lambda: {otherwise}, "
            "exclusive={exclusive})",
    "while": "fc.while_loop(lambda i, s: {condition}, lambda i, s: (i + 1, {body}), [0, {0}]{extra})[1]",
    "scan": "fc.scan(lambda s, e: {body}, {0}{initializer}, reverse={reverse})",
    "fold": "fc.{function}(lambda s, e: {body}, {0}{initializer})",
    "map_fn": "fc.map_fn(lambda e: {body}, {0})",
    "array_loop": "fc.while_loop(lambda i, t: i < {size}, lambda i, t: (i + 1, t.write(i, {body})), "
                  "[0, fc.TensorArray(fc.{dtype}, size={size}, element_shape={element})])[1].{finish}",
    "array_unstack": "fc.TensorArray(fc.{dtype}, size={size}).unstack({0}).{finish}",
}

# Bodies over `x` (the operand or state) and `c` (captured): (text, approximate).
FLOAT_BODIES = [("X * 0.5 + C", False), ("fc.tanh(X) + C", True), ("fc.maximum(X, C) - 0.25", False),
                ("fc.sin(fc.clip_by_value(X, -1e6, 1e6)) * C", True),  # cpu's sin: |x| < 2**40 (README)
                ("X * C - 1.0", False), ("fc.exp(-fc.abs(X)) + C", True)]
INT_BODIES = [("X + C", False), ("X * 2 - C", False), ("fc.maximum(X, C) - 1", False),
              ("fc.minimum(X + 1, C)", False), ("fc.abs(X) // 2 + C", False)]


class ControlDraws(Draws):
    def body(self, dtype: str, x: str, c: str) -> tuple[str, bool]:
        """A body over `x` and `c` (texts); the names are put in by hand: a body may hold format fields."""
        text, approximate = self.random.choice(FLOAT_BODIES if dtype in FLOATS else INT_BODIES)
        return text.replace("X", x).replace("C", f"({c})" if " " in c else c), approximate

    def inner_loop(self, dtype: str, x: str, c: str) -> tuple[str, bool]:
        """A while_loop over `x` as a body or branch of another construct (nested control flow)."""
        body, approximate = self.body(dtype, "u", c)
        return (f"fc.while_loop(lambda j, u: j < {self.random.randint(0, 3)}, lambda j, u: (j + 1, {body}), "
                f"[0, {x}])[1]"), approximate

    def two_ways(self, dtype: str, predicate: str, x: str, c: str) -> tuple[str, bool]:
        """A cond as a body: `predicate` must read exact values only (a loop counter, an exact element)."""
        (first, a), (second, b) = self.body(dtype, x, c), self.body(dtype, x, c)
        return f"fc.cond({predicate}, lambda: {first}, lambda: {second})", a or b

    def captured(self, x: Value, shape: tuple | None = None) -> Value | None:
        """A value of x's dtype whose shape broadcasts into `shape` (x's by default) unchanged."""
        shape = x.shape if shape is None else shape
        return self.pick(lambda v: v.dtype == x.dtype and len(v.shape) <= len(shape)
                         and broadcast_shapes(shape, v.shape) == shape)

    def predicate(self, position: int) -> tuple[str, Value] | None:
        """A scalar bool over an EXACT value of the pool, as text naming operand `position`."""
        p = self.pick(lambda v: v.error == EXACT)
        if p is None:
            return None
        at = "{%d}" % position
        if p.dtype == "bool":
            return self.random.choice([f"fc.reduce_any({at})", f"fc.reduce_all({at})"]), p
        zero = "0.5" if p.dtype in FLOATS else "0"
        return self.random.choice([f"fc.reduce_max({at}) > {zero}", f"fc.reduce_min({at}) < {zero}"]), p

    def branch_values(self) -> tuple[Value, Value] | None:
        x = self.pick(lambda v: v.dtype in FLOATS + INTS)
        return None if x is None else (x, self.captured(x) or x)

    def op_cond(self) -> bool:
        values = self.branch_values()
        predicate = self.predicate(2)
        if values is None or predicate is None:
            return False
        x, c = values
        (then, a), (otherwise, b) = self.body(x.dtype, "{0}", "{1}"), self.body(x.dtype, "{1}", "{0}")
        if self.chance(0.25):
            then, a = self.inner_loop(x.dtype, "{0}", "{1}")
        if self.chance(0.3):
            otherwise = "{0}"  # a branch that passes its operand through
        error = max(x.error, c.error, rounding_of(x.dtype) if a or b else EXACT)
        self.add("cond", [x, c, predicate[1]], x.dtype, x.shape, error, predicate=predicate[0], then=then,
                 otherwise=otherwise)
        return True

    def op_case(self) -> bool:
        values = self.branch_values()
        first, second = self.predicate(2), self.predicate(3)
        if values is None or first is None or second is None:
            return False
        x, c = values
        bodies = [self.body(x.dtype, "{0}", "{1}") for _ in range(3)]
        error = max([x.error, c.error] + [rounding_of(x.dtype) for _, approximate in bodies if approximate])
        # exclusive: more than one true predicate is an error at run time, on both targets
        self.add("case", [x, c, first[1], second[1]], x.dtype, x.shape, error, predicate=first[0],
                 second=second[0], then=bodies[0][0], middle=bodies[1][0], otherwise=bodies[2][0],
                 exclusive=self.chance(0.2))
        return True

    def op_while(self) -> bool:
        x = self.pick(lambda v: v.dtype in FLOATS + INTS)
        if x is None:
            return False
        c = self.captured(x) or x
        body, approximate = self.body(x.dtype, "s", "{1}")
        roll = self.random.random()
        if roll < 0.2:
            body, approximate = self.two_ways(x.dtype, f"i < {self.random.randint(1, 3)}", "s", "{1}")
        elif roll < 0.35:
            body, approximate = self.inner_loop(x.dtype, "s", "{1}")
        args, extra = [x, c], ""
        roll = self.random.random()
        if roll < 0.35:
            condition = f"i < {self.random.randint(0, 4)}"
        elif roll < 0.7:  # the trip count is the size of an unknown dim, known only at run time
            sized = self.pick(lambda v: any(not isinstance(d, int) for d in v.shape))
            if sized is None:
                return False
            axis = next(i for i, d in enumerate(sized.shape) if not isinstance(d, int))
            condition = f"i < fc.minimum(fc.shape({{2}})[{axis}], {self.random.randint(3, 9)})"
            args.append(sized)
        elif x.error == EXACT and x.dtype in INTS:  # the state decides, and a cap keeps the loop short
            body, approximate = self.body(x.dtype, "s", "{1}")
            condition = f"fc.logical_and(i < 6, fc.reduce_sum(s) < {self.random.randint(-3, 20)})"
        else:
            condition = "i < 10"
            extra = f", maximum_iterations={self.random.randint(0, 3)}"
        error = max(x.error, c.error, rounding_of(x.dtype) if approximate else EXACT)
        self.add("while", args, x.dtype, x.shape, error, condition=condition, body=body, extra=extra)
        return True

    def op_scan(self) -> bool:
        x = self.pick(lambda v: v.dtype in FLOATS + INTS and len(v.shape) >= 1)
        if x is None:
            return False
        element = x.shape[1:]
        c = self.captured(x, element) or x  # x only names itself when unused
        body, approximate = self.body(x.dtype, "s", "e" if c is x else self.random.choice(["e", "e * {1}", "e - {1}"]))
        start = self.pick(lambda v: v.dtype == x.dtype and v.shape == element)
        args, initializer = [x, c], ""
        # Without an initializer, no elements is an error on both targets (and at build time if it is static).
        if start is not None and (self.chance(0.7) or x.shape[0] == 0):
            args.append(start)
            initializer = ", initializer={2}"
        elif x.shape[0] == 0:
            return False
        error = max(x.error, c.error, start.error if initializer else EXACT,
                    rounding_of(x.dtype) if approximate or x.dtype in FLOATS else EXACT)
        if self.chance(0.5):
            self.add("scan", args, x.dtype, x.shape, error, body=body, initializer=initializer,
                     reverse=self.chance(0.4))
        else:
            self.add("fold", args, x.dtype, element, error, body=body, initializer=initializer,
                     function=self.random.choice(["foldl", "foldr"]))
        return True

    def op_map(self) -> bool:
        # map_fn needs its function's result shape when the graph is built: only the mapped dim may be unknown
        x = self.pick(lambda v: v.dtype in FLOATS + INTS and len(v.shape) >= 1
                      and all(isinstance(d, int) for d in v.shape[1:]))
        if x is None:
            return False
        c = self.captured(x, x.shape[1:]) or x
        if c is x or self.chance(0.3):
            reduction = self.random.choice(["reduce_max", "reduce_min", "reduce_sum"])
            sums = reduction == "reduce_sum" and x.dtype in FLOATS
            self.add("map_fn", [x, c], x.dtype, x.shape[:1], max(x.error, c.error, rounding_of(x.dtype) if sums
                     else EXACT), body=f"fc.{reduction}(e * {{1}})" if c is not x else f"fc.{reduction}(e)")
            return True
        body, approximate = self.body(x.dtype, "e", "{1}")  # c fits the element
        roll = self.random.random()
        if roll < 0.25 and x.error == EXACT:
            zero = "0.5" if x.dtype in FLOATS else "0"
            body, approximate = self.two_ways(x.dtype, f"fc.reduce_max(e) > {zero}", "e", "{1}")
        elif roll < 0.45 and len(x.shape) >= 2 and x.shape[1] != 0:
            inner, approximate = self.body(x.dtype, "a", "v")
            body = f"fc.scan(lambda a, v: {inner}, e)"
        self.add("map_fn", [x, c], x.dtype, x.shape, max(x.error, c.error, rounding_of(x.dtype) if approximate
                 else EXACT), body=body)
        return True

    def op_tensor_array(self) -> bool:
        x = self.pick(lambda v: v.dtype in FLOATS + INTS and all(isinstance(d, int) for d in v.shape))
        if x is None:
            return False
        unstacked = bool(x.shape) and x.shape[0] >= 1 and self.chance(0.5)  # the rows of x, read back
        size = x.shape[0] if unstacked else self.random.randint(1, 4)
        element = x.shape[1:] if unstacked else x.shape
        index = self.random.randrange(size)
        finish = self.random.choice(["stack()", "concat()", f"read({index})", f"gather([{index}, 0])"])
        if finish == "concat()" and not element:
            finish = "stack()"
        shape = {"stack": (size,) + element, "concat": (size * element[0],) + element[1:] if element else (),
                 "read": element, "gather": (2,) + element}[finish.split("(")[0]]
        if unstacked:
            self.add("array_unstack", [x], x.dtype, shape, x.error, dtype=x.dtype, size=size, finish=finish)
            return True
        body, approximate = self.body(x.dtype, "{0}", "fc.cast(i, t.dtype)")
        error = max(x.error, rounding_of(x.dtype) if approximate else EXACT)
        self.add("array_loop", [x], x.dtype, shape, error, dtype=x.dtype, size=size, body=body, finish=finish,
                 element=list(element))
        return True
