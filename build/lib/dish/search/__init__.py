"""Architecture search with a predictor in the loop, over a table or live ground truth."""
