"""Draws of the math the registry's elementwise ops do not spell (tan, asin, acos, sinh, cosh,
atan2, reciprocal, squared_difference, clip_by_value, add_n), the fc.nn helpers (activations,
cross entropies, normalizations, moments, bias_add, clip_by_norm, in_top_k, embedding_lookup)
and conv2d, depthwise_conv2d and pooling.

Domains: an inexact operand of asin or acos goes through tanh, and tan's
through tanh too (far from its poles); atan2 jumps by 2 pi where y crosses 0
left of the origin, so an inexact y meets an x kept >= 1. Convolutions get
inputs of their own, [batch, H, W, C] with an unknown batch and static H, W
(the front end needs them), and a static filter.
"""

from __future__ import annotations

from . import dims
from .dims import broadcast_shapes
from .draws import Draws
from .kinds import FLOATS, NUMERIC
from .spec import EXACT, Value, rounding_of

NN_TEMPLATES = {
    "call": "fc.{function}({0})",  # an approximate float function of one operand
    "bounded_call": "fc.{function}(fc.tanh({0}) * 0.875)",
    "call2": "fc.{function}({0}, {1})",
    "clip": "fc.clip_by_value({0}, {low}, {high})",
    "nn": "fc.nn.{function}({0}{extra})",
    "nn2": "fc.nn.{function}(labels={0}, logits={1})",
    "moments": "fc.nn.moments({0}, axes={axes}, keep_dims={keepdims})[{part}]",
    "conv2d": "fc.nn.conv2d({0}, {1}, strides={strides}, padding={padding!r}, dilations={dilations})",
    "depthwise": "fc.nn.depthwise_conv2d({0}, {1}, strides=[1, {stride}, {stride}, 1], padding={padding!r})",
    "pool": "fc.nn.{function}({0}, ksize={window}, strides={strides}, padding={padding!r})",
    "bias_add": "fc.nn.bias_add({0}, {1})",
    "add_n": "fc.add_n([{args}])",
    "clip_by_norm": "fc.clip_by_norm({0}, {norm})",
    "in_top_k": "fc.nn.in_top_k({0}, {1}, {k})",
    "embedding_lookup": "fc.nn.embedding_lookup({0}, {1})",
}

ACTIVATIONS = ["softplus", "softsign", "elu", "selu", "relu6", "leaky_relu"]


class NNDraws(Draws):
    def op_more_math(self) -> bool:
        function = self.random.choice(["tan", "asin", "acos", "sinh", "cosh", "reciprocal"])
        x = self.pick(lambda v: v.is_float)
        if x is None:
            return False
        error = max(x.error, rounding_of(x.dtype))
        if function == "reciprocal":
            x = self.positive(x)
        if function in ("tan", "asin", "acos") and (x.error != EXACT or function == "tan"):
            self.add("bounded_call", [x], x.dtype, x.shape, error, function=function)
        else:  # an exact operand outside [-1, 1] makes NaN on both targets: that is compared too
            self.add("call", [x], x.dtype, x.shape, error, function=function)
        return True

    def op_binary_math(self) -> bool:
        function = self.random.choice(["atan2", "squared_difference", "squared_difference"])
        x = self.pick(lambda v: v.dtype in (FLOATS if function == "atan2" else NUMERIC))
        if x is None:
            return False
        y = self.pick(lambda v: v.dtype == x.dtype and broadcast_shapes(x.shape, v.shape) is not None) or x
        if function == "atan2" and x.error != EXACT:
            y = self.positive(y, always=True)  # atan2(x, y): x is the ordinate, y >= 1
        error = max(x.error, y.error, rounding_of(x.dtype) if function == "atan2" else EXACT)
        self.add("call2", [x, y], x.dtype, broadcast_shapes(x.shape, y.shape), error, function=function)
        return True

    def op_clip(self) -> bool:
        x = self.pick(lambda v: v.dtype in NUMERIC)
        if x is None:
            return False
        low, high = sorted(self.random.sample([-2, -1, 0, 1, 3], 2))
        if x.is_float:
            low, high = f"{low - 0.5}", f"{high + 0.25}"
        self.add("clip", [x], x.dtype, x.shape, x.error, low=low, high=high)
        return True

    def op_activation(self) -> bool:
        function = self.random.choice(ACTIVATIONS)
        x = self.pick(lambda v: v.is_float)
        if x is None:
            return False
        extra = f", alpha={self.random.choice([0.2, 0.5, 1.5])}" if function == "leaky_relu" else ""
        error = x.error if function == "relu6" else max(x.error, rounding_of(x.dtype))
        self.add("nn", [x], x.dtype, x.shape, error, function=function, extra=extra)
        return True

    def op_normalize(self) -> bool:
        x = self.pick(lambda v: v.is_float and v.shape != ())
        if x is None:
            return False
        axis, chosen = self.axes(len(x.shape))  # type: ignore[attr-defined]
        error = max(x.error, rounding_of(x.dtype))
        roll = self.random.random()
        if roll < 0.4:
            self.add("nn", [x], x.dtype, x.shape, error, function="l2_normalize", extra=f", axis={axis}")
        elif roll < 0.6:
            self.add("nn", [x], x.dtype, (), error, function="l2_loss", extra="")
        else:
            keepdims = self.chance(0.5)
            shape = tuple(1 if i in chosen else d for i, d in enumerate(x.shape) if keepdims or i not in chosen)
            self.add("moments", [x], x.dtype, shape, error, axes=chosen, keepdims=keepdims,
                     part=self.random.choice([0, 1]))
        return True

    def op_cross_entropy(self) -> bool:
        logits = self.pick(lambda v: v.is_float and v.shape != ())
        if logits is None:
            return False
        function = self.random.choice(["sigmoid_cross_entropy_with_logits", "softmax_cross_entropy_with_logits"])
        labels = self.pick(lambda v: v.dtype == logits.dtype and v.shape == logits.shape and v is not logits)
        if labels is None:  # a distribution, as the losses expect
            labels = self.add("softmax", [logits], logits.dtype, logits.shape, max(logits.error, rounding_of(
                logits.dtype)), function="softmax", axis=-1)
        shape = logits.shape if function.startswith("sigmoid") else logits.shape[:-1]
        self.add("nn2", [labels, logits], logits.dtype, shape,
                 max(labels.error, logits.error, rounding_of(logits.dtype)), function=function)
        return True

    def op_bias_add(self) -> bool:
        x = self.pick(lambda v: v.is_float and len(v.shape) >= 2 and isinstance(v.shape[-1], int))
        if x is None:
            return False
        bias = self.pick(lambda v: v.dtype == x.dtype and v.shape == x.shape[-1:]) or self.add_input(x.dtype,
                                                                                                     x.shape[-1:])
        self.add("bias_add", [x, bias], x.dtype, x.shape, max(x.error, bias.error))
        return True

    def op_add_n(self) -> bool:
        x = self.pick(lambda v: v.dtype in NUMERIC)
        if x is None:
            return False
        parts = [x] + [self.pick(lambda v: v.dtype == x.dtype and v.shape == x.shape) or x
                       for _ in range(self.random.randint(0, 3))]
        self.add("add_n", parts, x.dtype, x.shape, max(p.error for p in parts))  # in order: correctly rounded
        return True

    def op_clip_by_norm(self) -> bool:
        x = self.pick(lambda v: v.is_float)
        if x is None:
            return False
        self.add("clip_by_norm", [x], x.dtype, x.shape, max(x.error, rounding_of(x.dtype)),
                 norm=self.random.choice([0.5, 1.0, 4.0]))
        return True

    def op_in_top_k(self) -> bool:
        """Whether each row's target is among its k largest: a jump, so over EXACT predictions only."""
        predictions = self.pick(lambda v: v.is_float and v.error == EXACT and len(v.shape) == 2)
        if predictions is None:
            return False
        targets = self.add_input(self.random.choice(["int32", "int64"]), predictions.shape[:1],
                                 indexes=predictions.shape[1])
        self.add("in_top_k", [predictions, targets], "bool", predictions.shape[:1], EXACT,
                 k=self.random.randint(0, 3))
        return True

    def op_embedding_lookup(self) -> bool:
        params = self.pick(lambda v: len(v.shape) >= 1)
        if params is None:
            return False
        batch = self.index_batch(set(params.shape))  # type: ignore[attr-defined]
        ids = self.add_input(self.random.choice(["int32", "int64"]), batch, indexes=params.shape[0])
        self.add("embedding_lookup", [params, ids], params.dtype, ids.shape + params.shape[1:], params.error)
        return True

    # -- convolutions and pools ----------------------------------------------------------------

    def image(self) -> Value:
        """A float [batch, H, W, C] value: one of the pool with static H, W, C, or a new input."""
        x = self.pick(lambda v: v.is_float and len(v.shape) == 4 and all(isinstance(d, int) for d in v.shape[1:]))
        if x is not None and self.chance(0.5):
            return x
        batch = dims.symbol(self.random.choice(self.symbols)) if self.chance(0.7) else self.random.randint(1, 2)
        shape = (batch, self.random.randint(1, 7), self.random.randint(1, 7), self.random.randint(1, 3))
        return self.add_input(self.random.choice(FLOATS), shape)

    def windows(self, sizes: tuple, window: tuple, strides: tuple, dilations: tuple, padding: str) -> tuple | None:
        """The output's spatial sizes, or None where the window does not fit (VALID)."""
        if padding == "SAME":
            return tuple(-(-size // s) for size, s in zip(sizes, strides))
        outs = tuple((size - (k - 1) * d - 1) // s + 1 for size, k, d, s in zip(sizes, window, dilations, strides))
        return outs if min(outs) >= 1 else None

    def op_conv(self) -> bool:
        x = self.image()
        height, width, channels = x.shape[1:]
        window = (self.random.randint(1, 3), self.random.randint(1, 3))
        strides = (self.random.choice([1, 1, 2]), self.random.choice([1, 2, 3]))
        padding = self.random.choice(["SAME", "VALID"])
        depthwise = self.chance(0.3)
        if depthwise:
            strides = (strides[0], strides[0])
        dilations = (1, 1) if depthwise or strides != (1, 1) or self.chance(0.6) else (self.random.randint(1, 2), 2)
        outs = self.windows((height, width), window, strides, dilations, padding)
        if outs is None:
            return False
        out_channels = self.random.randint(1, 3)
        kernel = self.add_input(x.dtype, window + (channels, out_channels))
        error = max(x.error, rounding_of(x.dtype))
        if depthwise:
            self.add("depthwise", [x, kernel], x.dtype, (x.shape[0],) + outs + (channels * out_channels,), error,
                     stride=strides[0], padding=padding)
        else:
            self.add("conv2d", [x, kernel], x.dtype, (x.shape[0],) + outs + (out_channels,), error,
                     strides=list(strides), padding=padding, dilations=list(dilations))
        return True

    def op_pool(self) -> bool:
        x = self.image()
        window = (self.random.randint(1, 3), self.random.randint(1, 3))
        strides = (self.random.choice([1, 2]), self.random.choice([1, 2, 3]))
        padding = self.random.choice(["SAME", "VALID"])
        outs = self.windows(x.shape[1:3], window, strides, (1, 1), padding)
        if outs is None:
            return False
        function = self.random.choice(["max_pool", "avg_pool"])
        error = x.error if function == "max_pool" else max(x.error, rounding_of(x.dtype))
        self.add("pool", [x], x.dtype, (x.shape[0],) + outs + (x.shape[3],), error, function=function,
                 window=list(window), strides=list(strides), padding=padding)
        return True
