"""Shared plumbing every stage uses: errors, atomic files, statistics, initialisation, epochs, runtime, provenance."""
