"""extract_patches and fold_patches natively against the reference, on odd shapes, size-0 and size-1
dims, unknown batch, every dtype they take; their type rules and errors."""

from __future__ import annotations

import numpy as np
import pytest
from test_rows import compile_cpu, reference, sample, type_text

from flowc import ir
from flowc.ir.errors import FlowcError

CASES = [  # image shape, window, strides, dilations, pads (top, bottom, left, right)
    ((2, 7, 9, 3), (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    ((1, 8, 7, 5), (3, 2), (2, 3), (1, 1), (1, 0, 0, 2)),
    ((3, 9, 8, 1), (2, 3), (1, 1), (2, 3), (0, 2, 3, 0)),
    ((1, 1, 1, 4), (1, 1), (1, 1), (1, 1), (0, 0, 0, 0)),
    ((2, 1, 6, 2), (1, 3), (1, 2), (1, 1), (0, 0, 1, 1)),
    ((0, 4, 4, 2), (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    ((2, 4, 4, 0), (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    ((1, 5, 5, 33), (5, 5), (1, 1), (1, 1), (0, 0, 0, 0)),
]


def attributes(window, strides, dilations, pads) -> str:
    def listed(values) -> str:
        return "[" + ", ".join(str(v) for v in values) + "]"

    return (f"dilations = {listed(dilations)}, pads = {listed(pads)}, strides = {listed(strides)}, "
            f"window = {listed(window)}")


def patches_module(dtype: str, shape, window, strides, dilations, pads, unknown: bool) -> tuple[str, tuple]:
    """extract_patches of the image, then fold_patches of those patches times 2."""
    attrs = {"window": window, "strides": strides, "dilations": dilations, "pads": pads}
    out_height = (shape[1] + pads[0] + pads[1] - (window[0] - 1) * dilations[0] - 1) // strides[0] + 1
    out_width = (shape[2] + pads[2] + pads[3] - (window[1] - 1) * dilations[1] - 1) // strides[1] + 1
    patches = (shape[0], out_height, out_width, window[0] * window[1] * shape[3])
    declared = (None, *shape[1:]) if unknown else shape
    declared_patches = (None, *patches[1:]) if unknown else patches
    image_type, patches_type = type_text(dtype, declared), type_text(dtype, declared_patches)
    text = f"""
func @main(%x: {image_type}) -> ({patches_type}, {image_type}) {{
  %p = extract_patches %x {{{attributes(**attrs)}}} : {patches_type}
  %q = add %p, %p : {patches_type}
  %f = fold_patches %q {{{attributes(**attrs)}, size = [{shape[1]}, {shape[2]}]}} : {image_type}
  return %p, %f : {patches_type}, {image_type}
}}
"""
    return text, patches


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
@pytest.mark.parametrize("unknown", [False, True])
def test_cpu_matches_reference(rng: np.random.Generator, case, dtype: str, unknown: bool) -> None:
    shape, window, strides, dilations, pads = case
    text, patches_shape = patches_module(dtype, shape, window, strides, dilations, pads, unknown)
    executable, _ = compile_cpu(text)
    x = sample(rng, shape, dtype)
    want = reference(text, [x])
    assert want[0].shape == patches_shape and want[1].shape == shape
    for got, expected in zip(executable([x]), want):
        if dtype.startswith("float"):
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-5)
        else:
            np.testing.assert_array_equal(got, expected)
        assert got.dtype == expected.dtype


def test_the_reference_is_im2col_by_direct_loops(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 5, 6, 3))
    text, _ = patches_module("float64", x.shape, (3, 2), (2, 1), (1, 2), (1, 1, 2, 0), False)
    patches, folded = reference(text, [x])
    padded = np.pad(x, [(0, 0), (1, 1), (2, 0), (0, 0)])
    back = np.zeros_like(padded)
    for n, r, c, i, j in np.ndindex(2, patches.shape[1], patches.shape[2], 3, 2):
        row, column = r * 2 + i, c + j * 2
        np.testing.assert_array_equal(patches[n, r, c, (i * 2 + j) * 3:(i * 2 + j + 1) * 3], padded[n, row, column])
        back[n, row, column] += 2 * patches[n, r, c, (i * 2 + j) * 3:(i * 2 + j + 1) * 3]
    np.testing.assert_allclose(folded, back[:, 1:6, 2:8])


PATCH_ATTRS = {"window": (3, 3), "strides": (1, 1), "dilations": (1, 1), "pads": (0, 0, 0, 0)}


@pytest.mark.parametrize("text, words", [
    ("func @main(%x: f32[2,5,5]) -> f32[2,3,3,27] {\n  %p = extract_patches %x {" + attributes(**PATCH_ATTRS)
     + "} : f32[2,3,3,27]\n  return %p : f32[2,3,3,27]\n}", "rank 4"),
    ("func @main(%x: f32[2,2,5,3]) -> f32[2,1,3,27] {\n  %p = extract_patches %x {" + attributes(**PATCH_ATTRS)
     + "} : f32[2,1,3,27]\n  return %p : f32[2,1,3,27]\n}", "does not fit"),
    ("func @main(%x: f32[2,3,3,27]) -> f32[2,6,5,3] {\n  %p = fold_patches %x {" + attributes(**PATCH_ATTRS)
     + ", size = [6, 5]} : f32[2,6,5,3]\n  return %p : f32[2,6,5,3]\n}", "do not come from an image"),
])
def test_bad_types_are_errors_naming_the_op(text: str, words: str) -> None:
    with pytest.raises(FlowcError) as info:
        ir.verify(ir.parse_module(text))
    assert words in str(info.value) and ("extract_patches" in str(info.value) or "fold_patches" in str(info.value))
