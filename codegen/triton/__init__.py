"""The GPU backend: each fusion op becomes a Triton kernel, written as source text (kernel.py says what
an emitter makes and how kernels are loaded, launched and built to PTX)."""
