"""The comparison of predictors on held-out motifs of a ground-truth table."""
