"""flowc: a compiler from dataflow graphs to fused native code."""
