"""Every limit in one place, with the relations between them asserted.

A queue, batch, message or loop without a limit is a bug. Names put the unit
last (``frame_bytes_max``).
"""

from __future__ import annotations

# --- exchange --------------------------------------------------------------
open_orders_per_account_max = 200
labels_bytes_max = 64
combo_legs_min = 2
combo_legs_max = 4
combo_ratio_max = 10
instruments_max = 10_000
strikes_per_listing_max = 200
accounts_max = 10_000_000
levels_walked_per_order_max = 1_000  # a taker sweeps at most this many price levels
fills_per_order_max = 10_000

# --- blocks and commands ---------------------------------------------------
command_bytes_max = 4 * 1024
block_commands_max = 4_096
block_bytes_max = block_commands_max * command_bytes_max
block_wait_ms_max = 5

# --- consensus -------------------------------------------------------------
raft_entries_per_append_max = 256
raft_append_bytes_max = 4 * 1024 * 1024
raft_inflight_appends_max = 64
raft_snapshot_chunk_bytes = 1024 * 1024

# --- consensus: raft core (deltasync.consensus) ------------------------------
raft_inflight_bytes_max = 32 * 1024 * 1024  # unacknowledged append bytes per follower
raft_uncommitted_bytes_max = 64 * 1024 * 1024  # proposals refused beyond this backlog
raft_apply_bytes_per_ready_max = 16 * 1024 * 1024  # committed entry bytes handed out per Ready
raft_read_index_pending_max = 4_096  # queued linearizable reads on a leader
raft_snapshot_bytes_max = 4 * 1024 * 1024 * 1024  # a snapshot a follower will buffer
assert raft_inflight_bytes_max >= raft_append_bytes_max, "one full append must fit the window"
assert raft_uncommitted_bytes_max >= raft_append_bytes_max

# --- wire ------------------------------------------------------------------
frame_bytes_max = 16 * 1024 * 1024
peer_queue_frames_max = 4_096

# --- venue and api ---
http_body_bytes_max = 64 * 1024
ws_message_bytes_max = 64 * 1024
subscriptions_per_session_max = 256
# api (issue 5): auth, rate limits, sessions
api_timestamp_window_ms = 60_000  # signed requests must be this fresh
api_nonces_per_key_max = 10_000  # remembered per client_id inside the window
api_token_ttl_s = 900
api_tokens_per_key_max = 32
api_credits_max = 50_000  # Deribit-style credit bucket per key / connection
api_credits_refill_per_s = 50_000
api_request_credits = 100
api_ws_outbound_messages_max = 2_048  # a slower consumer is disconnected
api_ws_sessions_max = 1_024
api_request_timeout_s = 10
api_book_depth_max = 1_000
api_trades_count_max = 1_000
api_ws_requests_inflight_max = 256  # per connection; beyond it the server stops reading
# venue (deltasync.venue): the read model, request ids, subscribers of the block stream
venue_orders_kept_max = 200_000  # order views; closed ones are forgotten oldest first
venue_trades_per_instrument_max = 1_000
venue_trades_per_account_instrument_max = 1_000
venue_trades_by_id_kept_max = 100_000  # trade views a command result can name
venue_accounts_tracked_max = 100_000  # accounts whose own trades are kept
venue_liquidation_orders_kept_max = 10_000
venue_request_ids_kept_max = 100_000  # API request ids mapped to (session, request)
venue_block_subscriber_queue_max = 10_000  # blocks queued for one subscriber of the stream
venue_accounts_per_node = 1_000_000  # a node allocates account ids node_id * this + k
venue_peer_timeout_s = 1.0  # one HTTP call to another node's API (cluster status)
assert api_ws_requests_inflight_max <= api_ws_outbound_messages_max, "every answer fits the queue"
assert venue_liquidation_orders_kept_max <= venue_orders_kept_max
assert venue_trades_per_instrument_max <= venue_trades_by_id_kept_max
assert accounts_max // venue_accounts_per_node >= 2, "room for node ids 1.."

# --- commitment (Merkle state tree) ------------------------------------------
merkle_key_bytes_max = 1024
merkle_value_bytes_max = 1024 * 1024
merkle_diff_keys_max = 4_096  # divergent keys named by one diff walk
merkle_proof_bytes_max = 1024 * 1024  # a proof carries one bucket and 60 sibling hashes

# --- storage (WAL, snapshots) ----------------------------------------------
wal_record_bytes_max = block_bytes_max + 4 * 1024  # one log entry: a block plus its framing
wal_segment_bytes_target = 64 * 1024 * 1024  # a segment is closed once it reaches this size
wal_batch_records_max = 65_536  # records in one group commit
wal_segments_max = 100_000
snapshot_bytes_max = 4 * 1024 * 1024 * 1024
snapshots_kept_default = 3

# --- net (transport) --------------------------------------------------------
peer_queue_bytes_max = 32 * 1024 * 1024  # payload bytes queued for one peer
write_batch_bytes_max = 256 * 1024  # payload bytes sealed into one record (one write)
record_overhead_bytes = 4 + 16 + 4  # record header, MAC tag, one message header
handshake_frame_bytes_max = 256  # any frame before the peer has authenticated
pending_handshakes_max = 64  # inbound connections not yet authenticated, at once

# --- oracle and pricing (deltasync.exchange.oracle, .svi) -------------------
oracle_sources_max = 64  # price sources in the genesis config
oracle_id_bytes_max = 32  # a source id or underlying name
oracle_surface_slices_max = 32  # SVI slices (expiries) in one report
oracle_twap_samples_max = 7_200  # TWAP ring slots per underlying (window / interval)
svi_param_abs_max = 100 * 10**9  # |a|, |b|, |rho|, |m|, |sigma| at SVI_SCALE (1e9)
assert oracle_surface_slices_max * 6 * 9 + 256 <= command_bytes_max, "a full report fits a command"

assert combo_legs_min <= combo_legs_max
assert block_bytes_max <= raft_append_bytes_max * raft_entries_per_append_max
assert raft_append_bytes_max + 1024 <= frame_bytes_max, "an append must fit one frame"
assert raft_snapshot_chunk_bytes + 1024 <= frame_bytes_max, "a chunk must fit one frame"
assert command_bytes_max <= http_body_bytes_max
assert block_bytes_max <= frame_bytes_max
assert merkle_value_bytes_max + merkle_key_bytes_max < frame_bytes_max
assert wal_record_bytes_max <= wal_segment_bytes_target, "a record must fit one segment"
assert snapshots_kept_default >= 1
assert frame_bytes_max + record_overhead_bytes <= peer_queue_bytes_max, "a largest frame must fit a queue"
assert write_batch_bytes_max + record_overhead_bytes <= frame_bytes_max
assert raft_append_bytes_max + 1024 + record_overhead_bytes <= frame_bytes_max
assert handshake_frame_bytes_max < write_batch_bytes_max

# --- exchange: trading core (exchange/state.py) ------------------------------
fills_per_command_max = 1_023  # trade ids are log_id sub-indexes 1..1023 of their command
order_amount_raw_max = 10**15  # Quantity raw (1e9 units) per order
deposits_total_raw_max = 10**17  # Amount raw (1e11 USDC) held by the whole venue
closed_orders_cached_max = 10_000  # query cache of recently closed orders (not replicated)
book_depth_levels_max = 1_000  # levels a depth query returns
assert fills_per_command_max <= fills_per_order_max and fills_per_command_max < 1024
# Money sums stay inside int64 (the codec's range) with headroom for fees and PnL; the
# default grid (>= 1e4 raw of premium per contract of <= 1e5 raw) keeps level sums and
# positions below deposits_total_raw_max x 10.
assert deposits_total_raw_max * 10 < 2**63 and order_amount_raw_max * 1_000 < 2**63
