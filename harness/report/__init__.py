"""Renderers over results.json."""
