"""flowc.runtime."""
