"""Bundled tiny subject models with planted secrets, and their trainer."""
