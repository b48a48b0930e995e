"""`deltasync account create --api URL --deposit AMOUNT [--json]`: a trading account with an API key.

Calls ``public/deltasync_create_account`` on a venue running in demo mode and
prints the new ``client_id`` and ``client_secret`` (and the account id and
deposit). Amounts are decimal strings, converted exactly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from decimal import Decimal, InvalidOperation
from typing import Any

HELP = "create a trading account with an API key (demo clusters credit a deposit)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create an account and its API key")
    create.add_argument("--api", required=True, help="API base URL, e.g. http://127.0.0.1:8080")
    create.add_argument("--deposit", default="0", help="USDC to credit (demo mode), e.g. 100000")
    create.add_argument("--json", action="store_true", help="print one JSON object")
    create.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")


async def create_account(api: str, deposit: Decimal, timeout_s: float = 10.0) -> dict[str, Any]:
    from deltasync.client import Client

    async with Client(api, timeout_s=timeout_s) as client:
        return await client.create_demo_account(deposit)


def run(args: argparse.Namespace) -> int:
    import aiohttp

    from deltasync.client import ApiError

    try:
        deposit = Decimal(args.deposit)
    except InvalidOperation:
        print(f"error: --deposit {args.deposit!r} is not a decimal number", file=sys.stderr)
        return 2
    if not deposit.is_finite() or deposit < 0:
        print("error: --deposit must be a non-negative number", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(create_account(args.api, deposit, args.timeout))
    except ApiError as exc:
        print(f"error: the API refused: {exc}", file=sys.stderr)
        return 1
    except (OSError, TimeoutError, aiohttp.ClientError) as exc:
        print(f"error: cannot reach {args.api}: {exc!r}", file=sys.stderr)
        return 1
    out = {
        "account_id": result["account_id"],
        "client_id": result["client_id"],
        "client_secret": result["client_secret"],
        "deposit": str(result.get("deposit", deposit)),
        "api": args.api,
    }
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key}: {value}")
    return 0
