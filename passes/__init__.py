"""flowc.passes."""
