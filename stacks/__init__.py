"""Deployable units of a BU: each stack composes constructs and wires grants."""
