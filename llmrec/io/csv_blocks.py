"""CSV rows written a block at a time through pyarrow's writer, byte for byte as pandas'
`to_csv(float_format="%.6f")` writes them, at a fraction of its cost (pandas formats every
float in Python). Blocks pyarrow cannot write that way (a value that needs quotes, a score
that is not a finite float32) go through pandas."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

NO_QUOTES = pa_csv.WriteOptions(include_header=False, quoting_style="none")
WRITE_CHARS = 1 << 16
LARGEST_FIXED = 2.0**40  # |score| below this: score × 10⁶ is an exact int64


def write_csv_block(frame: pd.DataFrame, handle: io.TextIOBase, fixed: tuple[str, ...]) -> None:
    """Append `frame`'s rows (no header, no index) to a text handle, the `fixed` float columns
    with six decimals."""
    try:
        table = pa.table(
            {
                name: fixed_decimals(frame[name].to_numpy()) if name in fixed else frame[name]
                for name in frame.columns
            }
        )
        out = io.BytesIO()
        pa_csv.write_csv(table, out, NO_QUOTES)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
        frame.to_csv(handle, header=False, index=False, float_format="%.6f", lineterminator="\n")
        return
    text = out.getvalue().decode("utf-8")
    for start in range(0, len(text), WRITE_CHARS):  # a reader that left (`| head`) is noticed
        handle.write(text[start : start + WRITE_CHARS])


def fixed_decimals(values: np.ndarray) -> pa.Array:
    """float32 values as "%.6f" text (Python's correctly rounded formatting, ties to even).

    A float32 times 10⁶ is exact in float64 (24 + 20 significant bits), so rounding that
    product to an integer rounds the decimal value itself, as "%.6f" does; the integer is
    then printed with its decimal point put back. Anything else raises ValueError.
    """
    if values.dtype != np.float32 or not np.all(np.abs(values) < LARGEST_FIXED):
        raise ValueError("not finite float32 values")  # also NaN and ±inf
    micro = np.abs(np.rint(values.astype(np.float64) * 1e6)).astype(np.int64)
    whole = pa.array(micro // 1_000_000).cast(pa.string())
    fraction = pc.utf8_lpad(pa.array(micro % 1_000_000).cast(pa.string()), 6, "0")
    text = pc.binary_join_element_wise(whole, fraction, ".")
    return pc.if_else(
        pa.array(np.signbit(values)), pc.binary_join_element_wise("-", text, ""), text
    )
