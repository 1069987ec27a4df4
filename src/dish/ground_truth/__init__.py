"""Ground truth: the job that trains each motif's host network and writes one store row per motif."""
