"""Bundled public cohorts and a synthetic multi-site generator."""
