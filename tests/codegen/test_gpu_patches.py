"""The GPU's convolution patches (codegen/triton/kernels/patches.py): extract_patches and fold_patches
with strides, dilations and padding, unknown batch and image sizes, bit for bit with the reference in
Triton's interpreter; built to PTX for sm_90."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from triton_single_harness import assert_same, build, op_text  # noqa: E402

GEOMETRIES = [  # window, strides, dilations, pads
    ((3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    ((2, 3), (2, 1), (1, 2), (0, 1, 2, 0)),
    ((1, 1), (3, 2), (1, 1), (0, 0, 0, 0)),
]


@pytest.fixture
def folder(tmp_path):
    return str(tmp_path)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_extract_patches(dtype, geometry, rng, folder):
    window, strides, dilations, pads = geometry
    text = op_text("extract_patches", [(dtype, (None, None, None, 2))], window=window, strides=strides,
                   dilations=dilations, pads=pads)
    for shape in [(2, 5, 6, 2), (1, 4, 4, 2), (0, 5, 5, 2)]:
        assert_same(text, [(rng.standard_normal(shape) * 5).astype(dtype)], folder)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_fold_patches_adds_them_back_in_the_reference_order(dtype, geometry, rng, folder):
    window, strides, dilations, pads = geometry
    size = (5, 6)
    probe = op_text("extract_patches", [(dtype, (1, *size, 3))], window=window, strides=strides,
                    dilations=dilations, pads=pads)
    out_height, out_width, columns = (int(d) for d in probe.split("-> ")[1].split("[")[1].split("]")[0].split(",")[1:])
    text = op_text("fold_patches", [(dtype, (None, out_height, out_width, None))], window=window, strides=strides,
                   dilations=dilations, pads=pads, size=size)
    for batch in (2, 0):
        patches = (rng.standard_normal((batch, out_height, out_width, columns)) * 5).astype(dtype)
        assert_same(text, [patches], folder)


@pytest.mark.parametrize("name", ["extract_patches", "fold_patches"])
def test_builds_to_ptx_for_an_h100(name, folder):
    window, strides, dilations, pads = GEOMETRIES[1]
    if name == "extract_patches":
        text = op_text(name, [("float32", (None, None, None, 2))], window=window, strides=strides,
                       dilations=dilations, pads=pads)
    else:
        text = op_text(name, [("float32", (None, 3, 4, None))], window=window, strides=strides,
                       dilations=dilations, pads=pads, size=(5, 6))
    built = build(text, folder)
    for ptx in built.ptx() + built.ptx_of_unit_sizes():
        assert ".target sm_90" in ptx
