"""`deltasync account create` against a running demo API."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from decimal import Decimal

import pytest

from deltasync.client import Client

from .harness import running


def test_account_create_prints_working_credentials() -> None:
    async def main() -> None:
        async with running() as server:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "deltasync.cli.main", "account", "create",
                "--api", server.url, "--deposit", "2500.5", "--json",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(process.communicate(), 30)
            assert process.returncode == 0, err.decode()
            created = json.loads(out)
            assert created["deposit"] == "2500.5" and created["client_id"]
            async with Client(server.url, created["client_id"], created["client_secret"]) as api:
                summary = await api.get_account_summary()
                assert summary.balance == Decimal("2500.5")
                assert summary.raw["id"] == created["account_id"]

            bad = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "deltasync.cli.main", "account", "create",
                "--api", server.url, "--deposit", "lots",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            _, err = await asyncio.wait_for(bad.communicate(), 30)
            assert bad.returncode == 2 and b"--deposit" in err

    asyncio.run(main())


def test_account_creation_is_refused_outside_demo_mode() -> None:
    async def main() -> None:
        from deltasync.api.server import ApiServer
        from deltasync.client import ApiError
        from deltasync.venue.local import LocalVenue

        venue = LocalVenue(demo_mode=False)
        await venue.start()
        server = ApiServer(venue, "127.0.0.1", 0, demo_mode=False)
        await server.start()
        try:
            async with Client(server.url) as api:
                try:
                    await api.create_demo_account(Decimal(1))
                except ApiError as exc:
                    assert exc.code == 13021
                else:
                    raise AssertionError("created an account outside demo mode")
        finally:
            await server.stop()
            await venue.stop()

    asyncio.run(main())


@pytest.mark.dates
def test_dev_venue_serves_until_terminated() -> None:
    async def main() -> None:
        import signal

        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "deltasync.api.dev", "--port", "0",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            assert process.stdout is not None
            line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
            url = line.split()[3]
            assert url.startswith("http://127.0.0.1:")
            async with Client(url, timeout_s=5) as api:
                created = await api.create_demo_account(Decimal(1000))
                assert (await api.get_account_summary()).balance == Decimal(1000)
                assert created["account_id"] >= 1000
                assert await api.get_index_price("btc_usdc") is not None
                # its genesis lists expiries after today, whatever today is
                expiries_ms = [i["expiration_timestamp"] for i in await api.get_instruments("BTC")]
                assert expiries_ms and min(expiries_ms) > time.time() * 1000 + 86_400_000
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 30)
        assert process.returncode == 0

    asyncio.run(main())
