#!/usr/bin/env bash
# The whole pipeline on sample_data: split → embed → rank (the recommended recipe, profiling
# each user's history on the way) → evaluate against held-out interactions and an impression log.
set -euo pipefail
cd "$(dirname "$0")/.."
llmrec=".venv/bin/llmrec"
out="demo_out"
mkdir -p "$out"

set -x
"$llmrec" split sample_data/interactions.csv --history-out "$out/history.csv" --heldout-out "$out/heldout.csv"
"$llmrec" embed sample_data/items.csv --text "{title}. {description}" -o "$out/items.parquet"
"$llmrec" rank --user-history "$out/history.csv" --items "$out/items.parquet" -k 10 -o "$out/rankings.csv"
"$llmrec" evaluate "$out/rankings.csv" --truth "$out/heldout.csv" -k 5,10
{ set +x; } 2>/dev/null

echo
.venv/bin/python - "$out" <<'PY'
import sys
import pandas as pd
out = sys.argv[1]
titles = pd.read_csv("sample_data/items.csv", dtype=str).set_index("item_id")["title"]
history = pd.read_csv(f"{out}/history.csv", dtype=str)
rankings = pd.read_csv(f"{out}/rankings.csv", dtype={"user_id": str, "item_id": str})
for user in ("U01", "U05"):
    bought = ", ".join(titles[history.loc[history.user_id == user, "item_id"]])
    print(f"\n{user} bought: {bought}")
    for row in rankings[rankings.user_id == user].head(5).itertuples():
        print(f"  {row.rank:>2}. {titles[row.item_id]:<40} {row.score:.3f}")
PY
echo
set -x
"$llmrec" evaluate "$out/rankings.csv" --impressions sample_data/impressions.csv -k 5
