"""Every limit in one place, with the relations between them asserted.

A queue, batch, message or loop without a limit is a bug. Names are snake_case
and put the unit last (``frame_bytes_max``). One section per layer; a relation
is asserted in the section of the later of the limits it relates, so every
name it uses is already defined.

Settings that an operator or a test may change (``RaftConfig.append_bytes_max``,
``TransportConfig.queue_bytes_max`` ...) stay fields of their config classes;
their defaults come from here.
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
fills_per_command_max = 1_023  # trade ids are log_id sub-indexes 1..1023 of their command
order_amount_raw_max = 10**15  # Quantity raw (1e9 units) per order
deposits_total_raw_max = 10**17  # Amount raw (1e11 USDC) held by the whole venue
instrument_name_chars_max = 64  # BTC_USDC-27DEC26-100000-C is 25
# log ids (deltasync.core.ids.log_id): positions in one block, ids derived from one position
log_positions_max = 1 << 20
log_sub_ids_max = 1_024
# genesis bounds (deltasync.exchange.genesis)
market_band_ticks_max = 1_000_000  # the widest market-order band a genesis may set, in ticks
recent_trades_per_instrument_max = 10_000  # the most a genesis may keep per instrument
# query caches (not replicated)
closed_orders_cached_max = 10_000  # recently closed orders an order query still finds
book_depth_levels_max = 1_000  # levels a depth query returns
event_values_cached_max = 1 << 16  # interned values of event fields, per kind (hot_events)
# oracle and volatility surfaces (deltasync.exchange.oracle, .svi)
oracle_sources_max = 64  # price sources in the genesis config
oracle_id_bytes_max = 32  # a source id or underlying name
oracle_surface_slices_max = 32  # SVI slices (expiries) in one report
oracle_twap_samples_max = 7_200  # TWAP ring slots per underlying (window / interval)
svi_param_abs_max = 100 * 10**9  # |a|, |b|, |rho|, |m|, |sigma| at SVI_SCALE (1e9)
# pricing inputs (deltasync.exchange.pricing): wide enough for any market, narrow enough
# that nothing overflows (vol^2 T and r T stay far from exp's range)
pricing_vol_max = 1_000.0  # 100,000 % a year
pricing_t_years_max = 100.0
pricing_rate_max = 5.0  # 500 % a year, continuous
pricing_vol_ppm_max = 1_000 * 1_000_000  # larger integer vols saturate here
pricing_rate_ppm_max = 5 * 1_000_000
pricing_t_ns_max = 100 * 365 * 86_400 * 1_000_000_000
implied_vol_max = 100.0  # 10,000 % a year: above this an option is priced as a bound
implied_vol_iterations_max = 200
# margin and liquidation (deltasync.exchange.margin): bounds on the genesis margin section
margin_moves_max = 64  # spot moves of the portfolio scenario grid
margin_extended_moves_max = 16
margin_vol_shocks_max = 8
margin_mark_refresh_ns_max = 3_600 * 1_000_000_000
liquidation_accounts_per_block_max = 10_000

assert fills_per_command_max <= fills_per_order_max and fills_per_command_max < log_sub_ids_max
# Money sums stay inside int64 (the codec's range) with headroom for fees and PnL; the
# default grid (>= 1e4 raw of premium per contract of <= 1e5 raw) keeps level sums and
# positions below deposits_total_raw_max x 10.
assert deposits_total_raw_max * 10 < 2**63 and order_amount_raw_max * 1_000 < 2**63
assert pricing_vol_max * pricing_vol_max * pricing_t_years_max < 1e300
assert pricing_rate_max * pricing_t_years_max < 700.0
assert pricing_vol_ppm_max == int(pricing_vol_max) * 1_000_000
assert pricing_rate_ppm_max == int(pricing_rate_max) * 1_000_000
assert pricing_t_ns_max == int(pricing_t_years_max) * 365 * 86_400 * 1_000_000_000
assert 0.0 < implied_vol_max <= pricing_vol_max

# --- blocks and commands ---------------------------------------------------
command_bytes_max = 4 * 1024
block_commands_max = 4_096
block_bytes_max = block_commands_max * command_bytes_max
block_wait_ms_max = 5

# --- consensus (deltasync.consensus; defaults of RaftConfig) ----------------
raft_entries_per_append_max = 256
raft_append_bytes_max = 4 * 1024 * 1024  # entry data in one append; a larger entry is refused
raft_inflight_appends_max = 64
raft_snapshot_chunk_bytes = 1024 * 1024
raft_inflight_bytes_max = 32 * 1024 * 1024  # unacknowledged append bytes per follower
raft_uncommitted_bytes_max = 64 * 1024 * 1024  # proposals refused beyond this backlog
raft_apply_bytes_per_ready_max = 16 * 1024 * 1024  # committed entry bytes handed out per Ready
raft_read_index_pending_max = 4_096  # queued linearizable reads on a leader
raft_read_context_bytes_max = 1024  # the caller's tag of one linearizable read
raft_snapshot_bytes_max = 4 * 1024 * 1024 * 1024  # a snapshot a follower will buffer
raft_message_overhead_bytes = 1024  # a message's fields around its entries or snapshot chunk
assert raft_inflight_bytes_max >= raft_append_bytes_max, "one full append must fit the window"
assert raft_uncommitted_bytes_max >= raft_append_bytes_max
assert raft_snapshot_bytes_max >= raft_snapshot_chunk_bytes
assert block_bytes_max <= raft_append_bytes_max * raft_entries_per_append_max

# --- net (deltasync.net: framing, transport, handshake) ---------------------
frame_bytes_max = 16 * 1024 * 1024
peer_queue_frames_max = 4_096
peer_queue_bytes_max = 32 * 1024 * 1024  # payload bytes queued for one peer
write_batch_bytes_max = 256 * 1024  # payload bytes sealed into one record (one write)
record_overhead_bytes = 4 + 16 + 4  # record header, MAC tag, one message header
peer_payload_bytes_max = frame_bytes_max - record_overhead_bytes  # one message to a peer
handshake_frame_bytes_max = 256  # any frame before the peer has authenticated
pending_handshakes_max = 64  # inbound connections not yet authenticated, at once
cluster_id_bytes_max = 64  # UTF-8, in every HELLO
node_id_max = 2**64 - 1  # a HELLO carries the node id as a u64
# HELLO = magic 4 | version 1 | kind 1 | role 1 | node id 8 | nonce 32 | id length 1 | cluster id
handshake_hello_bytes_max = 48 + cluster_id_bytes_max
assert frame_bytes_max <= 2**32 - 1, "a frame's length is a u32"
assert frame_bytes_max + record_overhead_bytes <= peer_queue_bytes_max, "a largest frame must fit a queue"
assert write_batch_bytes_max + record_overhead_bytes <= frame_bytes_max
assert handshake_frame_bytes_max < write_batch_bytes_max
assert handshake_hello_bytes_max <= handshake_frame_bytes_max, "a HELLO fits a handshake frame"
assert raft_append_bytes_max + raft_message_overhead_bytes <= peer_payload_bytes_max, "an append fits one frame"
assert raft_snapshot_chunk_bytes + raft_message_overhead_bytes <= peer_payload_bytes_max, "a chunk fits one frame"
assert block_bytes_max <= frame_bytes_max

# --- consensus: BFT (deltasync.consensus.bft; defaults of BftConfig) ---------
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

# --- venue and api ---
http_body_bytes_max = 64 * 1024
ws_message_bytes_max = 64 * 1024
subscriptions_per_session_max = 256
# api (issue 5): auth, rate limits, sessions
api_timestamp_window_ms = 60_000  # signed requests must be this fresh
# Nonces are exact: a key's nonce is remembered until a request with its timestamp would be
# refused anyway (at most 2 windows after it arrived); when a key's memory is full, further
# signed requests of that key are refused (10028) instead of anything being forgotten. The
# memory holds this sustained rate of signed requests per key (tokens have no such limit):
api_signed_requests_per_key_per_s = 80
api_nonces_per_key_max = 10_000  # remembered per client_id, see above
api_token_ttl_s = 900
# used signed refresh tokens remembered per key until they expire (30 TTLs); a client
# refreshes about once per TTL, so this allows ~33 refreshes per TTL before refusing (10028)
api_refresh_tokens_used_per_key_max = 1_000
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
# a decimal parameter (amount, price, contracts, ...): bounded before any arithmetic, so a
# request cannot make the node build a million-digit integer ("1e999999")
api_decimal_digits_max = 40  # significant digits
api_decimal_exponent_max = 30  # |adjusted exponent|: 1e30 and 1e-30 are the extremes
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
assert api_nonces_per_key_max >= (
    api_signed_requests_per_key_per_s * 2 * api_timestamp_window_ms // 1000
), "a key's nonce memory holds two windows of signed requests at the sustained rate"
assert venue_liquidation_orders_kept_max <= venue_orders_kept_max
assert venue_trades_per_instrument_max <= venue_trades_by_id_kept_max
assert accounts_max // venue_accounts_per_node >= 2, "room for node ids 1.."

# --- commitment (Merkle state tree) ------------------------------------------
merkle_key_bytes_max = 1024
merkle_value_bytes_max = 1024 * 1024
merkle_diff_keys_max = 4_096  # divergent keys named by one diff walk
merkle_proof_bytes_max = 1024 * 1024  # a proof carries one bucket and 60 sibling hashes
assert merkle_value_bytes_max + merkle_key_bytes_max < frame_bytes_max

# --- storage (WAL, snapshots, data dir) ------------------------------------
wal_record_bytes_max = block_bytes_max + 4 * 1024  # one log entry: a block plus its framing
wal_segment_bytes_target = 64 * 1024 * 1024  # a segment is closed once it reaches this size
wal_batch_records_max = 65_536  # records in one group commit
wal_segments_max = 100_000
snapshot_bytes_max = 4 * 1024 * 1024 * 1024
snapshot_meta_bytes_max = 1024 * 1024  # a snapshot file's header (index, term, root, membership)
snapshots_kept_default = 3
report_name_chars_max = 100  # a halt report's file name in the data dir
assert wal_record_bytes_max <= wal_segment_bytes_target, "a record must fit one segment"
assert snapshots_kept_default >= 1

# --- node (deltasync.node: sequencer, forwarding, client sessions, gateway) --
pending_requests_max = 100_000  # commands of this node's clients waiting for their answer
forward_batch_max = 1024  # commands in one forward message to the leader
unforwarded_max = 50_000  # commands held while no leader is known
results_per_session_max = 64  # answers a client session keeps for its retries
client_sessions_max = 100_000  # sessions in the replicated table; the idlest go first
session_idle_ns_max = 3600 * 1_000_000_000  # of block time, then the session is evicted
gateway_connections_max = 256
gateway_inflight_per_connection_max = 20_000
gateway_frame_bytes_max = 1024 * 1024
gateway_auth_timeout_s = 3.0
client_command_overhead_bytes = 32  # session, request, origin (u64 each) and a list header
assert forward_batch_max <= block_commands_max, "one forward message fits one block"
assert (
    forward_batch_max * (command_bytes_max + client_command_overhead_bytes) <= peer_payload_bytes_max
), "a forward message fits one frame"
assert command_bytes_max + client_command_overhead_bytes <= gateway_frame_bytes_max, (
    "a submitted command fits one gateway frame"
)
assert gateway_inflight_per_connection_max <= pending_requests_max

# --- sim (deltasync.sim) ----------------------------------------------------
sim_clock_step_ns_max = 3 * 1_000_000_000  # a nemesis step of one node's clock, either way
sim_violations_max = 200  # distinct violations one run records

assert oracle_surface_slices_max * 6 * 9 + 256 <= command_bytes_max, "a full report fits a command"

assert combo_legs_min <= combo_legs_max
assert command_bytes_max <= http_body_bytes_max
