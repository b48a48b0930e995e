"""A TCP proxy on loopback that a test controls: one listener per directed link i -> j.

Node i dials node j through ``proxy_port(i, j)``; ``cut(i, j)`` drops that direction's
connections and refuses new ones (a one-way partition), ``heal()`` restores all links.
It runs its own event loop in a thread so tests stay synchronous.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable


class LinkProxy:
    def __init__(self, targets: dict[int, int], links: Iterable[tuple[int, int]]) -> None:
        self.targets = targets  # node id -> real listen port
        self.links = list(links)
        self.ports: dict[tuple[int, int], int] = {}
        self._cut: set[tuple[int, int]] = set()
        self._writers: dict[tuple[int, int], list[asyncio.StreamWriter]] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[asyncio.Server] = []
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _start(self) -> None:
        for link in self.links:
            server = await asyncio.start_server(
                lambda r, w, link=link: self._handle(link, r, w), "127.0.0.1", 0
            )
            self._servers.append(server)
            self.ports[link] = server.sockets[0].getsockname()[1]

    async def _handle(self, link: tuple[int, int], reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        if link in self._cut:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.targets[link[1]])
        except OSError:
            writer.close()
            return
        pair = [writer, up_writer]
        self._writers.setdefault(link, []).extend(pair)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    if link in self._cut:
                        break
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        for w in pair:
            if w in self._writers.get(link, []):
                self._writers[link].remove(w)

    def _run(self, fn) -> None:  # type: ignore[no-untyped-def]
        self._loop.call_soon_threadsafe(fn)

    def cut(self, source: int, target: int) -> None:
        def apply() -> None:
            self._cut.add((source, target))
            for writer in self._writers.pop((source, target), []):
                writer.close()

        self._run(apply)

    def isolate(self, node: int) -> None:
        for source, target in self.links:
            if node in (source, target):
                self.cut(source, target)

    def heal(self) -> None:
        self._run(self._cut.clear)

    def close(self) -> None:
        async def stop() -> None:
            for server in self._servers:
                server.close()
            for writers in self._writers.values():
                for writer in writers:
                    writer.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
