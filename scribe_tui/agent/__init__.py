"""The investigation loop, providers, steering, checkpoints and transcript (no Textual here)."""
