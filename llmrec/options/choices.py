"""The choices each option accepts (a `Literal` type with its values in one place), and the
parsers of option values that several option objects share (half-lives, durations)."""

from __future__ import annotations

import math
from typing import Literal, get_args

from ..errors import InputError, flag

Pooling = Literal["mean", "cls", "last"]
Device = Literal["auto", "cpu", "cuda", "mps"]
DType = Literal["float32", "bfloat16", "float16"]
Engine = Literal["local", "ray"]
ProfileStrategy = Literal["mean", "decay", "last", "weighted"]
WeightMode = Literal["auto", "centered", "log", "raw"]
SplitStrategy = Literal["leave-last", "temporal"]
Baseline = Literal["popular", "random"]
BlendPart = Literal["text", "cooc", "ease", "pop", "seq"]
ReportFormat = Literal["table", "json", "markdown"]
InfoFormat = Literal["table", "json"]

POOLINGS: tuple[str, ...] = get_args(Pooling)
DEVICES: tuple[str, ...] = get_args(Device)
DTYPES: tuple[str, ...] = get_args(DType)
ENGINES: tuple[str, ...] = get_args(Engine)
PROFILE_STRATEGIES: tuple[str, ...] = get_args(ProfileStrategy)
WEIGHT_MODES: tuple[str, ...] = get_args(WeightMode)
SPLIT_STRATEGIES: tuple[str, ...] = get_args(SplitStrategy)
BASELINES: tuple[str, ...] = get_args(Baseline)
BLEND_PARTS: tuple[str, ...] = get_args(BlendPart)
REPORT_FORMATS: tuple[str, ...] = get_args(ReportFormat)
INFO_FORMATS: tuple[str, ...] = get_args(InfoFormat)


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """Fail in one line, naming the option, unless `value` is one of `choices`."""
    if value not in choices:
        raise InputError(f"{flag(name)} {value!r}: choose one of {', '.join(choices)}")


ItemIds = Literal["auto", "on", "off", "only"]
ITEM_IDS: tuple[str, ...] = get_args(ItemIds)
GPU_DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")  # train and rank: CUDA or the CPU
AnnIndex = Literal["ivf", "hnsw"]
ANN_INDEXES: tuple[str, ...] = get_args(AnnIndex)

TuneMetric = Literal["ndcg", "recall", "hit_rate", "mrr"]
TUNE_METRICS: tuple[str, ...] = get_args(TuneMetric)


_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_half_life(value: str | float | None) -> tuple[float, str] | None:
    """`5` → (5, "events"); `30d`, `12h`, `2w`, `90m`, `45s` → (seconds, "seconds")."""
    if value is None or value == "":
        return None
    text = str(value).strip().lower()
    unit = "events"
    scale = 1.0
    if text and text[-1] in _TIME_UNITS:
        unit, scale, text = "seconds", _TIME_UNITS[text[-1]], text[:-1]
    try:
        amount = float(text) * scale
    except ValueError:
        amount = float("nan")
    if not math.isfinite(amount) or amount <= 0:
        raise InputError(
            f"{flag('half_life')} {value!r}: give a positive number of events (e.g. 5) "
            "or a time such as 30d, 12h, 2w"
        )
    return amount, unit


def parse_duration(value: str | float | None, name: str = "time_budget") -> float | None:
    """`90s`, `15m`, `2h`, `1d` or plain seconds → seconds (None stays None)."""
    if value is None or value == "":
        return None
    text = str(value).strip().lower()
    scale = 1.0
    if text and text[-1] in _TIME_UNITS:
        scale, text = _TIME_UNITS[text[-1]], text[:-1]
    try:
        seconds = float(text) * scale
    except ValueError:
        seconds = float("nan")
    if not math.isfinite(seconds) or seconds <= 0:
        raise InputError(f"{flag(name)} {value!r}: give a duration such as 90s, 15m or 2h")
    return seconds
