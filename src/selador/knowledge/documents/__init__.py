"""Markdown documents bundled with the local knowledge base (data only)."""
