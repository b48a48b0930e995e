"""JSON-RPC errors with Deribit's codes and messages.

A handler raises ``ApiError``; the server turns it into the response's
``error`` object. The venue's errors (``deltasync.venue.errors``) and the
exchange's business rejections (reason names) are mapped here, in one table
each, to the code a Deribit client already handles.
"""

from __future__ import annotations

from typing import Any

from deltasync.venue import errors as venue_errors

# JSON-RPC 2.0
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

# Deribit
AUTHORIZATION_REQUIRED = 10000
ERROR = 10001
QTY_TOO_LOW = 10002
ORDER_OVERLAP = 10003
ORDER_NOT_FOUND = 10004
PRICE_TOO_LOW = 10005
PRICE_TOO_HIGH = 10007
NOT_ENOUGH_FUNDS = 10009
ALREADY_CLOSED = 10010
PRICE_NOT_ALLOWED = 10011
BOOK_CLOSED = 10012
PME_MAX_TOTAL_OPEN_ORDERS = 10013
INVALID_OR_UNSUPPORTED_INSTRUMENT = 10020
INVALID_AMOUNT = 10021
INVALID_PRICE = 10023
INVALID_ORDER_ID = 10025
PRICE_PRECISION_EXCEEDED = 10026
TOO_MANY_REQUESTS = 10028
NOT_OWNER_OF_ORDER = 10029
MUST_BE_WEBSOCKET_REQUEST = 10030
INVALID_ARGS_FOR_INSTRUMENT = 10031
SETTLEMENT_IN_PROGRESS = 10041
PRICE_WRONG_TICK = 10043
NOT_IMPLEMENTED = 10033
MATCHING_ENGINE_QUEUE_FULL = 10047
ALREADY_FILLED = 11008
INVALID_ARGUMENTS = 11029
OTHER_REJECT = 11030
NOT_OPEN_ORDER = 11044
BAD_REQUEST = 11050
POST_ONLY_REJECT = 11054
SUBSCRIBE_ERROR = 11052
INVALID_CREDENTIALS = 13004
SECURITY_ERROR = 13006
UNAUTHORIZED = 13009
FORBIDDEN = 13021
NOT_FOUND = 13020
TEMPORARILY_UNAVAILABLE = 13028

MESSAGES: dict[int, str] = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
    AUTHORIZATION_REQUIRED: "authorization_required",
    ERROR: "error",
    QTY_TOO_LOW: "qty_too_low",
    ORDER_OVERLAP: "order_overlap",
    ORDER_NOT_FOUND: "order_not_found",
    PRICE_TOO_LOW: "price_too_low",
    PRICE_TOO_HIGH: "price_too_high",
    NOT_ENOUGH_FUNDS: "not_enough_funds",
    ALREADY_CLOSED: "already_closed",
    PRICE_NOT_ALLOWED: "price_not_allowed",
    BOOK_CLOSED: "book_closed",
    PME_MAX_TOTAL_OPEN_ORDERS: "pme_max_total_open_orders",
    INVALID_OR_UNSUPPORTED_INSTRUMENT: "invalid_or_unsupported_instrument",
    INVALID_AMOUNT: "invalid_amount",
    INVALID_PRICE: "invalid_price",
    INVALID_ORDER_ID: "invalid_order_id",
    PRICE_PRECISION_EXCEEDED: "price_precision_exceeded",
    TOO_MANY_REQUESTS: "too_many_requests",
    NOT_OWNER_OF_ORDER: "not_owner_of_order",
    MUST_BE_WEBSOCKET_REQUEST: "must_be_websocket_request",
    INVALID_ARGS_FOR_INSTRUMENT: "invalid_args_for_instrument",
    SETTLEMENT_IN_PROGRESS: "settlement_in_progress",
    PRICE_WRONG_TICK: "price_wrong_tick",
    NOT_IMPLEMENTED: "not_implemented",
    MATCHING_ENGINE_QUEUE_FULL: "matching_engine_queue_full",
    ALREADY_FILLED: "already_filled",
    INVALID_ARGUMENTS: "invalid_arguments",
    OTHER_REJECT: "other_reject",
    NOT_OPEN_ORDER: "not_open_order",
    BAD_REQUEST: "bad_request",
    POST_ONLY_REJECT: "post_only_reject",
    SUBSCRIBE_ERROR: "subscribe_error_unsubscribed",
    INVALID_CREDENTIALS: "invalid_credentials",
    SECURITY_ERROR: "security_error",
    UNAUTHORIZED: "unauthorized",
    FORBIDDEN: "forbidden",
    NOT_FOUND: "not_found",
    TEMPORARILY_UNAVAILABLE: "temporarily_unavailable",
}

# The exchange's rejection reasons (lower snake case) -> Deribit codes.
# Several spellings are listed because reasons are matched by name; an
# unknown reason is reported as 11030 other_reject with the name in data.
REJECTION_CODES: dict[str, int] = {
    # exchange.events.RejectReason, by RejectReason.code
    "insufficient_funds": NOT_ENOUGH_FUNDS,
    "insufficient_margin": NOT_ENOUGH_FUNDS,
    "post_only_would_cross": POST_ONLY_REJECT,
    "reduce_only_would_increase": OTHER_REJECT,
    "unknown_instrument": INVALID_OR_UNSUPPORTED_INSTRUMENT,
    "too_many_open_orders": PME_MAX_TOTAL_OPEN_ORDERS,
    "invalid_price_tick": PRICE_WRONG_TICK,
    "amount_below_minimum": QTY_TOO_LOW,
    "invalid_amount_step": INVALID_AMOUNT,
    "instrument_inactive": ALREADY_CLOSED,
    "invalid_expiry": INVALID_ARGUMENTS,
    "no_liquidity": OTHER_REJECT,
    "unknown_order": ORDER_NOT_FOUND,
    "not_order_owner": ORDER_NOT_FOUND,  # never reveal that another account's order exists
    "combo_invalid_legs": INVALID_ARGS_FOR_INSTRUMENT,
    "combo_would_not_fill": OTHER_REJECT,
    "not_authorized": FORBIDDEN,
    "instrument_exists": INVALID_ARGUMENTS,
    "too_many_instruments": INVALID_ARGUMENTS,
    "invalid_amount": INVALID_AMOUNT,
    "unknown_underlying": INVALID_OR_UNSUPPORTED_INSTRUMENT,
    "unknown_account": NOT_ENOUGH_FUNDS,  # an account that never deposited has no funds
    "invalid_price": INVALID_PRICE,
    "trading_halted": BOOK_CLOSED,
    # exchange.oracle.RejectReason, by value
    "unknown_source": INVALID_CREDENTIALS,
    "source_not_allowed_for_underlying": FORBIDDEN,
    "bad_signature": INVALID_CREDENTIALS,
    "non_positive_price": INVALID_PRICE,
    "timestamp_out_of_window": INVALID_ARGUMENTS,
    "not_newer": INVALID_ARGUMENTS,
    "invalid_vol_surface": INVALID_ARGUMENTS,
    # reasons the API itself finds before sequencing
    "order_not_open": NOT_OPEN_ORDER,
    "already_filled": ALREADY_FILLED,
    "price_too_low": PRICE_TOO_LOW,
    "price_too_high": PRICE_TOO_HIGH,
    "settlement_in_progress": SETTLEMENT_IN_PROGRESS,
}


class ApiError(Exception):
    """An error answer: ``code``, Deribit's ``message`` and optional ``data``."""

    def __init__(self, code: int, data: Any = None, message: str | None = None) -> None:
        self.code = code
        self.message = message or MESSAGES.get(code, "error")
        self.data = data
        super().__init__(f"{code} {self.message} {data!r}")

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


# Reasons a caller must not tell apart from another: cancelling another account's order
# answers exactly as cancelling an id that does not exist (no order-id oracle).
_PUBLIC_REASON = {"not_order_owner": "unknown_order"}


def rejection_error(reason: str, detail: dict[str, Any] | None = None) -> ApiError:
    reason = _PUBLIC_REASON.get(reason, reason)
    code = REJECTION_CODES.get(reason, OTHER_REJECT)
    data: dict[str, Any] = {"reason": reason}
    if detail:
        data.update({key: value for key, value in detail.items() if _json_atom(value)})
    return ApiError(code, data)


# The venue's errors -> Deribit codes; ``data`` is the error's structured fields.
VENUE_ERROR_CODES: dict[type[venue_errors.VenueError], int] = {
    venue_errors.InvalidRequest: INVALID_PARAMS,
    venue_errors.UnknownInstrument: INVALID_OR_UNSUPPORTED_INSTRUMENT,
    venue_errors.InvalidForInstrument: INVALID_ARGS_FOR_INSTRUMENT,
    venue_errors.OrderNotFound: ORDER_NOT_FOUND,
    venue_errors.NotSupported: NOT_IMPLEMENTED,
    venue_errors.Forbidden: FORBIDDEN,
    venue_errors.Unavailable: TEMPORARILY_UNAVAILABLE,
    venue_errors.QueueFull: MATCHING_ENGINE_QUEUE_FULL,
    venue_errors.Refused: OTHER_REJECT,
}


def from_venue_error(error: venue_errors.VenueError) -> ApiError:
    code = VENUE_ERROR_CODES.get(type(error), INTERNAL_ERROR)
    return ApiError(code, dict(error.fields) or None)


def invalid_param(param: str, reason: str) -> ApiError:
    return ApiError(INVALID_PARAMS, {"param": param, "reason": reason})


def _json_atom(value: Any) -> bool:
    return value is None or type(value) in (bool, int, str)
