"""Kernels, notebooks, the model host, InterpClient and GPU probes (no Textual here)."""
