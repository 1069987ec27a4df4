"""dish's search as a Hydra sweeper (``hydra/sweeper=dish``) over the ground-truth task."""
