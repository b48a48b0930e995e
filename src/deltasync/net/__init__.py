"""Networking: framing, asyncio transport, peer connections."""
