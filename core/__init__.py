"""Typed facts shared by config, inference and training; imports nothing of ours."""
