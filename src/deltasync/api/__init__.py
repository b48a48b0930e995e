"""Deribit-compatible JSON-RPC API over HTTP and WebSocket."""
