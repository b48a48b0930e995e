"""The venue: the port the API talks to, between the node and the API.

Stable API:

- ``Venue`` and ``Pipeline`` (port): what the API calls;
- ``LocalVenue`` (local): one process, a one-node ``NodeCore`` on in-memory storage;
- ``NodeVenue`` (replicated): a replicated node's venue;
- the views (views): ``OrderView``, ``TradeView``, ``BookView``, ... and the
  exchange's ``Side``, ``OrderType`` and ``TimeInForce``;
- the errors (errors): ``VenueError`` and its family;
- combo names (combos): ``make_combo``, ``parse_combo``, ``is_combo_name``.

Inside: ``commands`` (request fields -> exchange commands), ``readmodel`` (the
block fold and command results), ``reads`` (queries of the state machine),
``marks`` (display marks and Greeks), ``shell`` (what both venues share).
"""
