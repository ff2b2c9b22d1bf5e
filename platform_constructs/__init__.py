"""Secure-by-default building blocks the stacks compose (not named ``constructs``: see README)."""
