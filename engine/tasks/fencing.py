"""A task's storage fenced by its lease: an object commits only while the task is still this
runner's, so a runner taken over (paused past staleness, say) stores nothing more."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType

from engine.storage import Storage, Writer

Fence = Callable[[], Awaitable[None]]  # returns while the lease holds, else raises LeaseLost


class FencedWriter(Writer):
    """A Writer whose commit first passes the fence; failing it, the object is discarded."""

    fence: Fence

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            try:
                await self.fence()
            except BaseException as failure:
                await super().__aexit__(type(failure), failure, failure.__traceback__)
                raise
        await super().__aexit__(exc_type, exc, tb)


class FencedStorage(Storage):
    """The same root as storage, whose writers commit only past the fence (Journal.fence)."""

    def __init__(self, storage: Storage, fence: Fence) -> None:
        super().__init__(
            storage._fs, storage.root, storage._boundary, storage._area, storage._endpoint
        )
        self._fence = fence

    def writer(
        self,
        relative: str,
        *,
        compress: str | None = "zstd",
        level: int | None = None,
        engine: bool = False,
    ) -> Writer:
        """A writer for one object, committed only while the lease holds."""
        place = self._place(relative, engine=engine)
        writer = FencedWriter(place, compress, self._codec(compress, relative), level)
        writer.fence = self._fence
        return writer
