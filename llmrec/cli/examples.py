"""Two real examples per command, shown at the end of its --help (each runs as written on
sample_data's files once the earlier stages have made them; a test runs them)."""

from __future__ import annotations

EXAMPLES: dict[str, tuple[str, str]] = {
    "split": (
        "llmrec split interactions.csv --history-out history.csv --heldout-out heldout.csv",
        "llmrec split interactions.csv --strategy temporal --fraction 0.2 "
        "--history-out history.csv --heldout-out heldout.csv",
    ),
    "embed": (
        'llmrec embed items.csv --text "{title}. {description}" -o items.parquet',
        "llmrec embed items.csv --dtype bfloat16 --batch-size 128 -o items.parquet",
    ),
    "profile": (
        "llmrec profile history.csv --items items.parquet -o users.parquet",
        "llmrec profile history.csv --items items.parquet --strategy decay --half-life 3 "
        "-o users.parquet",
    ),
    "rank": (
        "llmrec rank --user-history history.csv --items items.parquet -k 10 -o rankings.csv",
        "llmrec rank --users users.parquet --user-history history.csv --items items.parquet "
        "--blend text=1,cooc=1 --explain -o rankings.csv",
    ),
    "evaluate": (
        "llmrec evaluate rankings.csv --truth heldout.csv -k 5,10 --ci",
        "llmrec evaluate rankings.csv --impressions impressions.csv -k 5 --format json "
        "-o report.json",
    ),
    "tune": (
        "llmrec tune history.csv --items items.parquet -o tuned.json",
        "llmrec tune history.csv --items items.parquet --trials 20 --metric recall@20 "
        "-o tuned.json",
    ),
    "train": (
        "llmrec train history.csv --items items.parquet -o model",
        "llmrec train history.csv --items items.parquet --item-ids off --epochs 4 -o model",
    ),
    "info": (
        "llmrec info items.parquet",
        "llmrec info users.parquet --format json",
    ),
}


def epilog(command: str) -> str | None:
    """The examples of `command` as the markdown end of its help."""
    if command not in EXAMPLES:
        return None
    return "**Examples**\n\n" + "\n\n".join(f"`{line}`" for line in EXAMPLES[command])
