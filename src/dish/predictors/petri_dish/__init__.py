"""The Synthetic Petri Dish: its model, its differentiable inner optimiser and the fit/resume harness."""
