"""Reports and figures of finished comparisons and searches."""
