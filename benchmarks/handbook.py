"""Transactions in the shape of the fraud-detection handbook's simulated dataset (Le Borgne et al.,
*Reproducible Machine Learning for Credit Card Fraud Detection*), regenerated here from the
algorithm the handbook describes, so detection quality can be measured on data the product's own
generator did not make: the schema (TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID,
TX_AMOUNT, TX_TIME_SECONDS, TX_TIME_DAYS, TX_FRAUD, TX_FRAUD_SCENARIO) and the three scenarios:

1. every transaction above 220 is fraud;
2. each day two terminals are compromised: every transaction on them in the next 28 days is fraud;
3. each day three customers are compromised: a third of their transactions in the next 14 days
   are fraud, with five times the amount.

Customers and terminals sit on a 100 x 100 grid; a customer uses the terminals within radius 5,
spends a normal amount around its own mean (5 to 100), and makes a Poisson number of transactions
a day (mean 0 to 4) around midday. Vectorized with NumPy; the same seed gives the same file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

DAY = 86_400


def generate_handbook(n_customers: int = 5_000, n_terminals: int = 10_000, days: int = 183,
                      start: str = "2018-04-01", radius: float = 5.0, seed: int = 0) -> pd.DataFrame:
    """The transactions, in time order, with the handbook's columns."""
    rng = np.random.default_rng(seed)
    customer_xy = rng.uniform(0, 100, (n_customers, 2))
    mean_amount = rng.uniform(5, 100, n_customers)
    std_amount = mean_amount / 2
    mean_per_day = rng.uniform(0, 4, n_customers)
    terminal_xy = rng.uniform(0, 100, (n_terminals, 2))
    nearby = cKDTree(terminal_xy).query_ball_point(customer_xy, r=radius)

    counts = rng.poisson(np.repeat(mean_per_day[:, None], days, axis=1))  # customers x days
    counts[np.array([len(t) == 0 for t in nearby])] = 0  # a customer with no terminal nearby never pays
    customer = np.repeat(np.repeat(np.arange(n_customers), days), counts.ravel())
    day = np.repeat(np.tile(np.arange(days), n_customers), counts.ravel())
    seconds = rng.normal(DAY / 2, 20_000, len(customer))
    keep = (seconds > 0) & (seconds < DAY)
    customer, day, seconds = customer[keep], day[keep], seconds[keep].astype(np.int64)
    amount = rng.normal(mean_amount[customer], std_amount[customer])
    negative = amount < 0
    amount[negative] = rng.uniform(0, 2 * mean_amount[customer[negative]])
    amount = np.round(amount, 2)
    sizes = np.array([len(t) for t in nearby])
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    flat = np.concatenate([np.asarray(t, dtype=np.int64) for t in nearby if len(t)] or [np.zeros(0, np.int64)])
    terminal = flat[offsets[customer] + (rng.random(len(customer)) * sizes[customer]).astype(np.int64)]

    frame = pd.DataFrame({"TX_TIME_SECONDS": day * DAY + seconds, "TX_TIME_DAYS": day, "CUSTOMER_ID": customer,
                          "TERMINAL_ID": terminal, "TX_AMOUNT": amount})
    frame = frame.sort_values(["TX_TIME_SECONDS", "CUSTOMER_ID"], kind="stable", ignore_index=True)
    scenario = np.zeros(len(frame), dtype=np.int64)
    scenario[frame["TX_AMOUNT"].to_numpy() > 220] = 1

    tx_day, tx_terminal, tx_customer = (frame[c].to_numpy() for c in ("TX_TIME_DAYS", "TERMINAL_ID", "CUSTOMER_ID"))
    for d in range(days):
        compromised = rng.choice(n_terminals, 2, replace=False)
        hit = np.isin(tx_terminal, compromised) & (tx_day >= d) & (tx_day < d + 28)
        scenario[hit] = 2
    amounts = frame["TX_AMOUNT"].to_numpy().copy()
    for d in range(days):
        compromised = rng.choice(n_customers, 3, replace=False)
        candidates = np.flatnonzero(np.isin(tx_customer, compromised) & (tx_day >= d) & (tx_day < d + 14))
        chosen = rng.choice(candidates, len(candidates) // 3, replace=False) if len(candidates) >= 3 else candidates[:0]
        amounts[chosen] = np.round(amounts[chosen] * 5, 2)
        scenario[chosen] = 3
    frame["TX_AMOUNT"] = amounts
    frame.insert(0, "TRANSACTION_ID", np.arange(len(frame)))
    frame.insert(1, "TX_DATETIME", pd.Timestamp(start) + pd.to_timedelta(frame["TX_TIME_SECONDS"], unit="s"))
    frame["TX_FRAUD"] = (scenario > 0).astype(np.int64)
    frame["TX_FRAUD_SCENARIO"] = scenario
    return frame[["TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT", "TX_TIME_SECONDS",
                  "TX_TIME_DAYS", "TX_FRAUD", "TX_FRAUD_SCENARIO"]]


def write_handbook(path: Path, **options) -> pd.DataFrame:
    """Write the transactions as a CSV (timestamps as `YYYY-MM-DD HH:MM:SS`, as the handbook's files)."""
    frame = generate_handbook(**options)
    frame.to_csv(path, index=False, date_format="%Y-%m-%d %H:%M:%S")
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--terminals", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=183)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    frame = write_handbook(args.out, n_customers=args.customers, n_terminals=args.terminals, days=args.days, seed=args.seed)
    print(f"{len(frame):,} transactions, {frame['TX_FRAUD'].mean():.2%} fraud "
          f"({frame['TX_FRAUD_SCENARIO'].value_counts().sort_index().to_dict()}) -> {args.out}")


if __name__ == "__main__":
    main()
