"""Durable storage: WAL, snapshots, data-dir layout."""
