"""flowc.codegen."""
