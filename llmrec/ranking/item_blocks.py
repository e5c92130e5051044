"""The catalog as the tiles see it: item blocks in the scoring dtype, on the scoring device.

On the CPU the blocks are views of the item matrix (converted to bfloat16 once when that copy
fits the budget, else block by block). On a GPU the items stay resident when they fit in half of
the free memory; a larger catalog is streamed: each block is converted on the host into one of
two pinned staging buffers and copied to one of two device buffers on a side stream, so the
copy of the next block overlaps the scoring of this one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..engine.device import free_bytes

if TYPE_CHECKING:
    import torch


@dataclass
class ItemBlocks:
    """Item rows [a, b) in blocks of `step`, in `dtype` on `device` (see the module docstring)."""

    items: torch.Tensor  # float32 (items, dim), on the host
    step: int
    dtype: torch.dtype
    device: torch.device
    resident: torch.Tensor | None  # every item in `dtype` on `device`, when it fits

    @classmethod
    def of(
        cls,
        items: torch.Tensor,
        dtype: torch.dtype,
        step: int,
        device: torch.device,
        budget_bytes: int,
    ) -> ItemBlocks:
        """Blocks of `step` items; resident on the device if the catalog fits (on the CPU:
        float32 always, a bfloat16 copy within `budget_bytes`)."""
        size = items.numel() * dtype.itemsize
        free = free_bytes(device)
        on_host = dtype == items.dtype or size <= budget_bytes
        fits = on_host if free is None else size <= free // 2
        resident = items.to(device=device, dtype=dtype) if fits else None
        return cls(items, step, dtype, device, resident)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        """(a, b, items [a, b) in the scoring dtype on the device), in catalog order."""
        if self.resident is not None:
            for a in range(0, len(self), self.step):
                yield a, min(a + self.step, len(self)), self.resident[a : a + self.step]
        elif self.device.type == "cuda":
            yield from self._streamed()
        else:
            for a in range(0, len(self), self.step):
                yield a, min(a + self.step, len(self)), self.items[a : a + self.step].to(self.dtype)

    def _streamed(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        """Blocks copied to the GPU on a side stream, double-buffered: block i + 1 is copied
        while block i is scored, and a buffer is refilled only once its scoring is done."""
        import torch

        ranges = [(a, min(a + self.step, len(self))) for a in range(0, len(self), self.step)]
        shape = (self.step, self.items.shape[1])
        staging = [torch.empty(shape, dtype=self.dtype, pin_memory=True) for _ in range(2)]
        slots = [torch.empty(shape, dtype=self.dtype, device=self.device) for _ in range(2)]
        copied: list[torch.cuda.Event | None] = [None, None]
        scored: list[torch.cuda.Event | None] = [None, None]
        copier = torch.cuda.Stream(self.device)
        compute = torch.cuda.current_stream(self.device)

        def start(i: int) -> None:
            (a, b), s = ranges[i], i % 2
            if copied[s] is not None:
                copied[s].synchronize()  # the staging buffer's last copy has left the host
            staging[s][: b - a].copy_(self.items[a:b])
            with torch.cuda.stream(copier):
                if scored[s] is not None:
                    copier.wait_event(scored[s])  # the slot's last block is scored
                slots[s][: b - a].copy_(staging[s][: b - a], non_blocking=True)
                copied[s] = torch.cuda.Event()
                copied[s].record(copier)

        start(0)
        for i, (a, b) in enumerate(ranges):
            if i + 1 < len(ranges):
                start(i + 1)
            s = i % 2
            compute.wait_event(copied[s])
            yield a, b, slots[s][: b - a]
            scored[s] = torch.cuda.Event()
            scored[s].record(compute)
