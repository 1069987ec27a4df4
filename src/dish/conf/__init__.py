"""Hydra configs of the dish tasks (a config group per folder), shipped inside the package."""
