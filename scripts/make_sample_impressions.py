"""Write sample_data/impressions.csv: what the sample shop showed its 25 users, and what they
clicked and bought, a week after their last interaction.

Each user sees three impressions of eight products: five from the categories they shop in
(never a product they already have) and three from elsewhere, in a shuffled order. They click
the products of their own categories, one or two per impression, and buy some of the clicked
ones. Every fifth impression gets no click at all, nor do those of users who already own
every product of their categories. Seeded, so the file is the same every run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
SHOWN, OWN = 8, 5
IMPRESSIONS_PER_USER = 3


def main() -> None:
    rng = np.random.default_rng(2024)
    items = pd.read_csv(SAMPLE / "items.csv", dtype=str)
    interactions = pd.read_csv(SAMPLE / "interactions.csv", dtype=str)
    category = items.set_index("item_id")["category"]
    rows = []
    number = 0
    for user, history in interactions.groupby("user_id", sort=True):
        had = set(history.item_id)
        own_categories = set(category[list(had)])
        own = items[items.category.isin(own_categories) & ~items.item_id.isin(had)].item_id
        other = items[~items.category.isin(own_categories)].item_id
        last = pd.Timestamp(history.timestamp.max())
        for j in range(IMPRESSIONS_PER_USER):
            number += 1
            shown_own = rng.choice(own.to_numpy(), size=min(OWN, len(own)), replace=False)
            shown_other = rng.choice(other.to_numpy(), size=SHOWN - len(shown_own), replace=False)
            shown = rng.permutation(np.r_[shown_own, shown_other])
            clicks = set() if number % 5 == 0 else set(shown_own[: 1 + rng.integers(0, 2)])
            bought = set(list(clicks)[:1]) if rng.random() < 0.5 else set()
            time = last + pd.Timedelta(days=7 + j, hours=int(rng.integers(8, 20)))
            for item in shown:
                rows.append(
                    {
                        "impression_id": f"I{number:03d}",
                        "user_id": user,
                        "item_id": item,
                        "clicked": int(item in clicks),
                        "converted": int(item in bought),
                        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    }
                )
    pd.DataFrame(rows).to_csv(SAMPLE / "impressions.csv", index=False)


if __name__ == "__main__":
    main()
