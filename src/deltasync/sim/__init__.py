"""Deterministic simulation of whole clusters from one seed."""
