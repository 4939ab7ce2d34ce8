"""Textual widgets and styles for the interactive front end."""
