"""The sequential model: a small causal transformer over a user's recent items, each item given
by an adapter over its frozen text vector plus, for items seen in training, a learned ID vector.

Scores are cosine similarities between the transformer's output at a user's last event and
each item's representation, divided by a temperature: as in SASRec with text inputs (UniSRec's
idea without its mixture of adapters), so an item added after training still has a
representation, from its text alone.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional


class SequenceModel(nn.Module):
    """Causal transformer over item sequences (item numbers: table row + 1, 0 pads)."""

    def __init__(
        self,
        item_dim: int,
        *,
        dim: int = 64,
        layers: int = 2,
        heads: int = 2,
        dropout: float = 0.3,
        max_len: int = 50,
        id_slots: int = 0,
        text: bool = True,
    ) -> None:
        super().__init__()
        self.adapter = nn.Linear(item_dim, dim) if text else None  # None: ID vectors only
        self.ids = nn.Embedding(id_slots + 1, dim, padding_idx=0) if id_slots else None
        self.positions = nn.Embedding(max_len, dim)
        layer = nn.TransformerEncoderLayer(
            dim, heads, 4 * dim, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        # Start from the text geometry: an orthogonal projection keeps the cosines of item
        # vectors roughly as they are, and small position and ID vectors leave them dominant,
        # so an untrained model already ranks like "items similar to the latest ones".
        if self.adapter is not None:
            nn.init.orthogonal_(self.adapter.weight)
            nn.init.zeros_(self.adapter.bias)
        nn.init.normal_(self.positions.weight, std=0.02)
        if self.ids is not None:
            nn.init.normal_(self.ids.weight, std=0.02)
            with torch.no_grad():
                self.ids.weight[0].zero_()

    def items(
        self,
        vectors: torch.Tensor,
        slots: torch.Tensor | None,
        keep_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(items, dim) representations: adapter(text vector), plus the ID vector of items with a
        slot (> 0); `keep_ids` (0/1 per item) drops ID vectors, as ID dropout does in training.
        Without text, ID vectors alone (items without a slot get the zero vector)."""
        if self.adapter is None:
            return self.ids(slots)
        reps = self.adapter(vectors)
        if self.ids is not None and slots is not None:
            ids = self.ids(slots)
            reps = reps + (ids if keep_ids is None else ids * keep_ids[:, None])
        return reps

    def forward(self, sequences: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(batch, length, dim) states: position t has seen the items up to t and no later."""
        length = sequences.shape[1]
        table = torch.cat([items.new_zeros(1, items.shape[1]), items])  # row 0: padding
        x = table[sequences] + self.positions.weight[:length]
        mask = nn.Transformer.generate_square_subsequent_mask(
            length, device=x.device, dtype=x.dtype
        )
        states = self.encoder(self.dropout(x), mask=mask, is_causal=True)
        return self.norm(states)


def last_states(states: torch.Tensor, sequences: torch.Tensor) -> torch.Tensor:
    """(batch, dim): each right-padded row's state at its last item."""
    last = (sequences > 0).sum(dim=1).clamp(min=1) - 1
    return states[torch.arange(len(states), device=states.device), last]


def unit(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to length 1 (a zero row stays zero)."""
    return functional.normalize(x, dim=-1, eps=1e-12)
