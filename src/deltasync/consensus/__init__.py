"""Consensus cores (Raft, later BFT): sans-I/O, payloads are opaque bytes. Imports only `core`."""
