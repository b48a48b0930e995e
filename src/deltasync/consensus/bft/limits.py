"""Limits of the BFT core, with their relations asserted.

They live here, not in ``core/limits.py``, only because that file is being edited on
another branch this round; the wiring round moves them there unchanged.
"""

from __future__ import annotations

from deltasync.core.limits import frame_bytes_max

bft_validators_max = 100  # members of one validator set
bft_frame_headroom_bytes = 64 * 1024  # a proposal's certificates and header around its payload
bft_payload_bytes_max = frame_bytes_max - bft_frame_headroom_bytes  # a proposal's opaque payload
bft_round_window_max = 64  # votes/timeouts this many rounds ahead of ours are dropped
bft_evidence_window_rounds = 64  # signed messages remembered per validator for evidence
bft_blocks_pending_max = 1_024  # uncommitted blocks held (proposed or fetched)
bft_sync_blocks_per_response_max = 64  # ancestors sent in one block response
bft_sync_bytes_per_response_max = bft_payload_bytes_max  # payload bytes in one block response
bft_committed_per_ready_max = 256  # committed blocks handed out per Ready
bft_timeout_backoff_exponent_max = 4  # a round's timeout doubles per failed round, up to 16x

assert bft_validators_max >= 4
assert bft_payload_bytes_max + bft_frame_headroom_bytes <= frame_bytes_max, "a proposal fits a frame"
assert bft_sync_bytes_per_response_max + bft_frame_headroom_bytes <= frame_bytes_max
assert bft_sync_bytes_per_response_max >= bft_payload_bytes_max, "one block must fit a response"
assert bft_evidence_window_rounds >= 2 and bft_round_window_max >= 2
assert bft_blocks_pending_max >= bft_round_window_max
