"""Networking: framing, the HMAC-authenticated asyncio transport, peer links.

The transport moves opaque ``bytes`` between node ids; what they mean is the
node layer's business. See ``transport`` (links, bounds, delivery guarantees),
``auth`` (handshake, record MACs) and ``framing`` (wire frames).
"""

from deltasync.net.auth import AuthError
from deltasync.net.framing import FrameDecoder, FrameError, FrameTooLarge
from deltasync.net.transport import ProtocolViolation, Transport, TransportConfig

__all__ = [
    "AuthError",
    "FrameDecoder",
    "FrameError",
    "FrameTooLarge",
    "ProtocolViolation",
    "Transport",
    "TransportConfig",
]
