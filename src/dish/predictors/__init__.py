"""Predictors of a motif's score: the Synthetic Petri Dish and the black-box surrogates, behind one registry."""
