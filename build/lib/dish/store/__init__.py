"""The store of ground-truth rows and the tables (motifs and scores) read from it."""
