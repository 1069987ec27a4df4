"""Hosts: the networks a motif plugs into, for ground truth (LightningModules) and inside the Petri dish."""
