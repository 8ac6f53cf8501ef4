"""Realistic synthetic card and wallet transactions at Peruvian merchants, with labelled fraud.

Vectorized with NumPy and deterministic for a given `SyntheticConfig` (same seed, same rows).
Faker supplies merchant and customer name pools; everything per-row is NumPy.

Fraud comes from six scenarios, each recorded in `fraud_scenario`:
- card_testing: bursts of small online amounts on one card within minutes, from a new device;
- account_takeover: a new device and IP followed by a high online amount;
- impossible_travel: a card-present purchase in a city hundreds of km from the same card's
  previous purchase a short time before;
- compromised_terminal: a merchant whose transactions turn fraudulent for some days;
- amount_spike: an amount many times the customer's usual spend;
- off_hours: a high amount at an hour the merchant is closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np
import pandas as pd
from faker import Faker

from data.datasets import Dataset, StoredColumn, get_dataset, new_dataset
from data.db import ProgressFn, no_progress, quote_ident
from data.errors import InvalidInput
from data.geography import haversine_km, places_frame

SCENARIOS: tuple[str, ...] = (
    "card_testing",
    "account_takeover",
    "impossible_travel",
    "compromised_terminal",
    "amount_spike",
    "off_hours",
)
# Share of all fraud per scenario.
SCENARIO_SHARES = np.array([0.25, 0.15, 0.12, 0.20, 0.15, 0.13])


@dataclass(frozen=True)
class Category:
    name: str
    mcc: str
    share: float
    opens: int  # hour the merchant opens
    closes: int  # hour it closes (may be past midnight: 3 means 03:00 next day; 24 means midnight)
    median_pen: float
    sigma: float
    lunch: float = 0.0  # weight of the 13:00-14:00 peak
    dinner: float = 0.0  # weight of the 20:00-21:00 peak
    morning: float = 0.0  # weight of the 08:00 peak
    late: float = 0.0  # weight of the 23:00 peak


CATEGORIES: tuple[Category, ...] = (
    Category("restaurant", "5812", 0.28, 12, 23, 55, 0.55, lunch=3.0, dinner=2.5),
    Category("fine_dining", "5812", 0.04, 13, 24, 320, 0.45, lunch=1.5, dinner=3.0),
    Category("cafe", "5814", 0.12, 7, 21, 16, 0.50, morning=2.0, lunch=1.0),
    Category("fast_food", "5814", 0.12, 10, 24, 25, 0.45, lunch=2.5, dinner=2.0),
    Category("bar", "5813", 0.07, 17, 3, 70, 0.60, dinner=1.0, late=3.0),
    Category("delivery", "5812", 0.12, 10, 24, 45, 0.50, lunch=2.5, dinner=3.0),
    Category("supermarket", "5411", 0.10, 8, 22, 85, 0.70, lunch=0.5, dinner=1.0),
    Category("pharmacy", "5912", 0.05, 0, 24, 40, 0.60, lunch=0.5, dinner=0.5),
    Category("fuel", "5541", 0.04, 0, 24, 120, 0.50, morning=0.8, dinner=0.5),
    Category("electronics", "5732", 0.02, 10, 21, 600, 0.80, lunch=0.5, dinner=0.5),
    Category("hotel", "7011", 0.04, 0, 24, 280, 0.50, dinner=0.5),
)
CATEGORY_NAMES = tuple(c.name for c in CATEGORIES)
VENUE_PREFIX = {
    "restaurant": ("Cevichería", "Pollería", "Chifa", "Picantería", "Restaurante", "Anticuchería"),
    "fine_dining": ("Restaurante", "Casa", "Cocina"),
    "cafe": ("Café", "Cafetería", "Panadería"),
    "fast_food": ("Sanguchería", "Burger", "Pizzería", "Salchipapería"),
    "bar": ("Bar", "Pisco Bar", "Taberna"),
    "delivery": ("Delivery", "Cocina Oculta", "Dark Kitchen"),
    "supermarket": ("Minimarket", "Market", "Bodega"),
    "pharmacy": ("Botica", "Farmacia"),
    "fuel": ("Grifo", "Estación"),
    "electronics": ("Tecno", "Electro"),
    "hotel": ("Hotel", "Hostal"),
}
PAYMENT_METHODS = ("visa_debit", "visa_credit", "mastercard", "amex", "diners", "yape", "plin")
PAYMENT_WEIGHTS = np.array([0.30, 0.20, 0.18, 0.04, 0.03, 0.17, 0.08])
WALLETS = {"yape", "plin"}
CHANNELS = ("chip", "contactless", "online", "delivery_app", "wallet")
CH_CHIP, CH_CONTACTLESS, CH_ONLINE, CH_DELIVERY, CH_WALLET = range(5)
DIGITAL_CHANNELS = (CH_ONLINE, CH_DELIVERY, CH_WALLET)
# Monday..Sunday relative volume.
WEEKDAY_WEIGHTS = np.array([0.85, 0.85, 0.90, 0.95, 1.20, 1.35, 1.10])
IMPOSSIBLE_TRAVEL_MIN_KM = 500.0


@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate. Same config, same rows."""

    rows: int = 200_000
    seed: int = 42
    fraud_rate: float = 0.005
    start: date = date(2026, 8, 1)
    days: int = 90
    customers: int | None = None  # default: one per 40 transactions
    merchants: int | None = None  # default: one per 400 transactions

    def validated(self) -> SyntheticConfig:
        if not 100 <= self.rows <= 50_000_000:
            raise InvalidInput(f"rows must be between 100 and 50,000,000, got {self.rows:,}.", field="rows")
        if not 0.0 <= self.fraud_rate <= 0.2:
            raise InvalidInput(f"fraud rate must be between 0 and 0.2, got {self.fraud_rate}.", field="fraud_rate")
        if not 1 <= self.days <= 3660:
            raise InvalidInput(f"days must be between 1 and 3660, got {self.days}.", field="days")
        return self


def _hour_profile(cat: Category) -> np.ndarray:
    """Probability of each hour of the day for a category: zero while closed, peaks at meals."""
    hours = np.arange(24)
    open_mask = _open_mask(cat)
    bumps = (
        cat.lunch * np.exp(-(((hours - 13.5) / 1.2) ** 2))
        + cat.dinner * np.exp(-(((hours - 20.5) / 1.4) ** 2))
        + cat.morning * np.exp(-(((hours - 8.5) / 1.2) ** 2))
        + cat.late * np.exp(-((np.minimum(np.abs(hours - 23.5), 24 - np.abs(hours - 23.5)) / 1.8) ** 2))
    )
    # Open all night (pharmacies, fuel, hotels): quiet small hours.
    base = np.where((hours >= 1) & (hours <= 5), 0.05, 0.4)
    weights = (base + bumps) * open_mask
    return weights / weights.sum()


def _open_mask(cat: Category) -> np.ndarray:
    hours = np.arange(24)
    if cat.closes > cat.opens:
        return ((hours >= cat.opens) & (hours < cat.closes)).astype(float)
    return ((hours >= cat.opens) | (hours < cat.closes)).astype(float)


def closed_hours(category: str) -> list[int]:
    """Hours of the day a category's merchants are closed (empty for 24-hour ones)."""
    cat = CATEGORIES[CATEGORY_NAMES.index(category)]
    return [int(h) for h in np.flatnonzero(_open_mask(cat) == 0)]


def _split(total: int, shares: np.ndarray) -> np.ndarray:
    """Integer counts summing exactly to `total`, proportional to `shares` (largest remainder)."""
    raw = total * shares / shares.sum()
    counts = np.floor(raw).astype(int)
    counts[np.argsort(-(raw - counts))[: total - counts.sum()]] += 1
    return counts


class _World:
    """Customers, merchants and places: the fixed cast the transactions are drawn from."""

    def __init__(self, cfg: SyntheticConfig, rng: np.random.Generator, fake: Faker):
        self.places = places_frame()
        pop = self.places["population_k"].to_numpy(float)
        cities = self.places["city"].to_numpy()
        self.city_names, self.place_city = np.unique(cities, return_inverse=True)
        n_cities = len(self.city_names)

        n_cust = cfg.customers or max(50, cfg.rows // 40)
        n_merch = cfg.merchants or max(len(self.places), cfg.rows // 400)
        self.n_cust, self.n_merch = n_cust, n_merch

        # Customers.
        self.cust_place = rng.choice(len(pop), size=n_cust, p=pop / pop.sum())
        self.cust_city = self.place_city[self.cust_place]
        self.cust_age = np.clip(rng.normal(38, 13, n_cust), 18, 85).round().astype(np.int16)
        self.cust_account_age = np.clip(rng.exponential(900, n_cust), 1, 7000).round().astype(np.int32)
        self.cust_activity = rng.lognormal(0.0, 0.8, n_cust)
        self.cust_spend = rng.lognormal(0.0, 0.35, n_cust)
        pw = PAYMENT_WEIGHTS / PAYMENT_WEIGHTS.sum()
        self.cust_pay = rng.choice(len(PAYMENT_METHODS), size=(n_cust, 2), p=pw)
        # Devices: 0..n_cust-1 are primary phones; a second phone for 35% of customers.
        self.cust_device = np.stack(
            [np.arange(n_cust), np.where(rng.random(n_cust) < 0.35, n_cust + np.arange(n_cust), -1)], axis=1
        )
        self.n_devices = 2 * n_cust
        # Peruvian ISPs' public ranges, one home IP per customer.
        first = rng.choice(np.array([190, 181, 200, 179, 38]), n_cust)
        octets = rng.integers(1, 255, size=(n_cust, 3))
        self.cust_ip = np.array(
            [f"{a}.{b}.{c}.{d}" for a, (b, c, d) in zip(first.tolist(), octets.tolist(), strict=True)],
            dtype=object,
        )

        # Merchants: every city gets at least one, the rest follow population.
        cat_shares = np.array([c.share for c in CATEGORIES])
        self.merch_cat = rng.choice(len(CATEGORIES), size=n_merch, p=cat_shares / cat_shares.sum())
        first_places = np.array([np.flatnonzero(self.place_city == c)[0] for c in range(n_cities)])
        rest = rng.choice(len(pop), size=n_merch - n_cities, p=pop / pop.sum())
        self.merch_place = np.concatenate([first_places, rest])[:n_merch]
        self.merch_city = self.place_city[self.merch_place]
        self.merch_pop = rng.lognormal(0.0, 0.9, n_merch)
        surnames = [fake.last_name() for _ in range(300)]
        pick = rng.integers(0, len(surnames), n_merch)
        pre = rng.integers(0, 10_000, n_merch)
        self.merch_name = np.array(
            [
                f"{VENUE_PREFIX[CATEGORY_NAMES[c]][p % len(VENUE_PREFIX[CATEGORY_NAMES[c]])]} {surnames[s]}"
                for c, p, s in zip(self.merch_cat.tolist(), pre.tolist(), pick.tolist(), strict=True)
            ],
            dtype=object,
        )
        jitter = rng.normal(0, 0.008, size=(n_merch, 2))
        self.merch_lat = self.places["lat"].to_numpy()[self.merch_place] + jitter[:, 0]
        self.merch_lon = self.places["lon"].to_numpy()[self.merch_place] + jitter[:, 1]

        # Per-city merchant sampler: merchants sorted by city, cumulative popularity per city.
        order = np.lexsort((np.arange(n_merch), self.merch_city))
        self._merch_sorted = order
        city_sorted = self.merch_city[order]
        pop_sorted = self.merch_pop[order]
        cum = np.cumsum(pop_sorted)
        starts = np.searchsorted(city_sorted, np.arange(n_cities))
        ends = np.searchsorted(city_sorted, np.arange(n_cities), side="right")
        seg_start_cum = np.where(starts > 0, cum[np.maximum(starts - 1, 0)], 0.0)
        seg_total = cum[ends - 1] - seg_start_cum
        self._cum_in_city = city_sorted + (cum - seg_start_cum[city_sorted]) / seg_total[city_sorted]

        # City-to-city distances for impossible travel.
        centre = self.places.groupby("city")[["lat", "lon"]].mean().loc[self.city_names]
        lat, lon = centre["lat"].to_numpy(), centre["lon"].to_numpy()
        self.city_km = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])

    def merchants_in(self, city: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One merchant per entry of `city`, chosen by popularity among that city's merchants."""
        u = city + rng.random(len(city)) * (1 - 1e-12)
        idx = np.searchsorted(self._cum_in_city, u, side="right")
        return self._merch_sorted[np.minimum(idx, self.n_merch - 1)]


def _sample_times(
    cats: np.ndarray, n_days: int, rng: np.random.Generator, start_dow: int
) -> np.ndarray:
    """Seconds since the start of the period for each row, given its merchant category."""
    dow = (start_dow + np.arange(n_days)) % 7
    day_w = WEEKDAY_WEIGHTS[dow]
    day = rng.choice(n_days, size=len(cats), p=day_w / day_w.sum())
    hour = np.empty(len(cats), dtype=np.int64)
    for i, cat in enumerate(CATEGORIES):
        rows = np.flatnonzero(cats == i)
        hour[rows] = rng.choice(24, size=len(rows), p=_hour_profile(cat))
    return day.astype(np.int64) * 86_400 + hour * 3_600 + rng.integers(0, 3_600, len(cats))


def _channel_for(pay: np.ndarray, cats: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    wallet = np.isin(pay, [PAYMENT_METHODS.index(w) for w in WALLETS])
    card = rng.choice([CH_CHIP, CH_CONTACTLESS, CH_ONLINE], size=len(pay), p=[0.5, 0.4, 0.1])
    channel = np.where(wallet, CH_WALLET, card)
    return np.where(cats == CATEGORY_NAMES.index("delivery"), CH_DELIVERY, channel)


def generate_transactions(config: SyntheticConfig | None = None, progress: ProgressFn | None = None) -> pd.DataFrame:
    """Generate transactions as a frame in time order, one row per transaction."""
    cfg = (config or SyntheticConfig()).validated()
    report = progress or (lambda fraction, message: None)
    rng = np.random.default_rng(cfg.seed)
    fake = Faker("es")
    fake.seed_instance(cfg.seed)
    report(0.02, "Building customers and merchants")
    world = _World(cfg, rng, fake)

    n_fraud = int(round(cfg.rows * cfg.fraud_rate))
    per_scenario = dict(zip(SCENARIOS, _split(n_fraud, SCENARIO_SHARES), strict=True))
    n_added = per_scenario["card_testing"] + per_scenario["account_takeover"] + per_scenario["impossible_travel"]
    n_legit = cfg.rows - n_added
    start_dow = cfg.start.weekday()

    # --- Legitimate activity -------------------------------------------------------------
    report(0.10, f"Drawing {n_legit:,} legitimate transactions")
    act = world.cust_activity / world.cust_activity.sum()
    cust = rng.choice(world.n_cust, size=n_legit, p=act)
    home_city = world.cust_city[cust]
    travelling = rng.random(n_legit) < 0.08
    city_pop = np.bincount(world.place_city, weights=world.places["population_k"].to_numpy(float))
    destination = rng.choice(len(world.city_names), size=n_legit, p=city_pop / city_pop.sum())
    city = np.where(travelling, destination, home_city)
    merch = world.merchants_in(city, rng)
    cats = world.merch_cat[merch]
    secs = _sample_times(cats, cfg.days, rng, start_dow)
    medians = np.array([c.median_pen for c in CATEGORIES])[cats]
    sigmas = np.array([c.sigma for c in CATEGORIES])[cats]
    amount = rng.lognormal(np.log(medians * world.cust_spend[cust]), sigmas)
    pay = world.cust_pay[cust, (rng.random(n_legit) < 0.2).astype(int)]
    channel = _channel_for(pay, cats, rng)
    second = world.cust_device[cust, 1]
    device = np.where((rng.random(n_legit) < 0.3) & (second >= 0), second, world.cust_device[cust, 0])
    scenario = np.full(n_legit, -1, dtype=np.int8)

    report(0.35, f"Injecting {n_fraud:,} fraudulent transactions")
    free = np.ones(n_legit, dtype=bool)  # legit rows not yet used by a scenario

    # --- Compromised terminals: every transaction at a merchant for some days -------------
    need = per_scenario["compromised_terminal"]
    if need:
        for m in rng.permutation(world.n_merch):
            at_m = np.flatnonzero((merch == m) & free)
            if len(at_m) < 5:
                continue
            window_days = int(rng.integers(3, 8))
            first_day = int(rng.integers(0, max(1, cfg.days - window_days)))
            in_window = at_m[(secs[at_m] >= first_day * 86_400) & (secs[at_m] < (first_day + window_days) * 86_400)]
            take = in_window[np.argsort(secs[in_window], kind="stable")][:need]
            scenario[take] = SCENARIOS.index("compromised_terminal")
            amount[take] *= rng.uniform(1.2, 3.0, len(take))
            free[take] = False
            need -= len(take)
            if need == 0:
                break

    # --- Amount spikes against the customer's own history --------------------------------
    spikes = rng.choice(np.flatnonzero(free), size=per_scenario["amount_spike"], replace=False)
    scenario[spikes] = SCENARIOS.index("amount_spike")
    amount[spikes] *= rng.uniform(6, 20, len(spikes))
    free[spikes] = False

    # --- High amounts while the merchant is closed ---------------------------------------
    has_closed = np.array([len(closed_hours(c.name)) > 0 for c in CATEGORIES])
    candidates = np.flatnonzero(free & has_closed[cats])
    off = rng.choice(candidates, size=min(per_scenario["off_hours"], len(candidates)), replace=False)
    for i, cat in enumerate(CATEGORIES):
        rows = off[cats[off] == i]
        if len(rows):
            hours = np.array(closed_hours(cat.name))
            day_start = secs[rows] // 86_400 * 86_400
            secs[rows] = day_start + rng.choice(hours, len(rows)) * 3_600 + rng.integers(0, 3_600, len(rows))
    scenario[off] = SCENARIOS.index("off_hours")
    amount[off] = rng.lognormal(np.log(medians[off] * world.cust_spend[cust[off]]), 0.3) * rng.uniform(4, 12, len(off))
    free[off] = False

    parts = [
        dict(cust=cust, merch=merch, secs=secs, amount=amount, pay=pay, channel=channel, device=device, scenario=scenario)
    ]

    # --- Card testing: bursts of small online charges from a fresh device ----------------
    n_ct = per_scenario["card_testing"]
    if n_ct:
        sizes = []
        while sum(sizes) < n_ct:
            sizes.append(int(rng.integers(4, 13)))
        sizes[-1] -= sum(sizes) - n_ct
        sizes = np.array([s for s in sizes if s > 0])
        burst = np.repeat(np.arange(len(sizes)), sizes)
        victim = rng.choice(world.n_cust, len(sizes))
        burst_start = rng.integers(0, cfg.days * 86_400 - 3_600, len(sizes))
        step = rng.integers(5, 90, n_ct)
        offset = np.cumsum(step) - np.repeat(np.cumsum(step)[np.cumsum(sizes) - sizes], sizes)
        bcust = victim[burst]
        bmerch = world.merchants_in(rng.integers(0, len(world.city_names), len(sizes)), rng)[burst]
        parts.append(
            dict(
                cust=bcust,
                merch=bmerch,
                secs=burst_start[burst] + offset,
                amount=rng.uniform(1.0, 9.9, n_ct),
                pay=_card_of(world.cust_pay[bcust, 0]),
                channel=np.full(n_ct, CH_ONLINE),
                device=world.n_devices + burst,  # a new device per burst
                scenario=np.full(n_ct, SCENARIOS.index("card_testing"), dtype=np.int8),
            )
        )
    next_device = world.n_devices + (len(sizes) if n_ct else 0)

    # --- Account takeover: new device, high amount online ---------------------------------
    n_ato = per_scenario["account_takeover"]
    if n_ato:
        victim = rng.choice(world.n_cust, n_ato)
        pricey = np.flatnonzero(np.isin(world.merch_cat, [CATEGORY_NAMES.index(c) for c in ("electronics", "hotel", "fine_dining", "delivery")]))
        amerch = rng.choice(pricey, n_ato)
        hour_bias = np.where(rng.random(n_ato) < 0.5, rng.integers(0, 6, n_ato), rng.integers(6, 24, n_ato))
        parts.append(
            dict(
                cust=victim,
                merch=amerch,
                secs=rng.integers(0, cfg.days, n_ato) * 86_400 + hour_bias * 3_600 + rng.integers(0, 3_600, n_ato),
                amount=55 * world.cust_spend[victim] * rng.uniform(12, 40, n_ato),
                pay=world.cust_pay[victim, 0],
                channel=np.where(np.isin(world.cust_pay[victim, 0], [5, 6]), CH_WALLET, CH_ONLINE),
                device=next_device + np.arange(n_ato),
                scenario=np.full(n_ato, SCENARIOS.index("account_takeover"), dtype=np.int8),
            )
        )
        next_device += n_ato

    # --- Impossible travel: card present far away soon after a genuine purchase ----------
    n_it = per_scenario["impossible_travel"]
    if n_it:
        present = np.flatnonzero(free & np.isin(channel, [CH_CHIP, CH_CONTACTLESS]))
        anchors = rng.choice(present, n_it, replace=False)
        a_city = world.merch_city[merch[anchors]]
        far = world.city_km[a_city] >= IMPOSSIBLE_TRAVEL_MIN_KM
        # Pick a random far city per anchor: random scores, masked, argmax.
        far_city = np.argmax(np.where(far, rng.random(far.shape), -1.0), axis=1)
        imerch = world.merchants_in(far_city, rng)
        icats = world.merch_cat[imerch]
        imed = np.array([c.median_pen for c in CATEGORIES])[icats]
        parts.append(
            dict(
                cust=cust[anchors],
                merch=imerch,
                secs=secs[anchors] + rng.integers(600, 7_200, n_it),
                amount=rng.lognormal(np.log(imed * world.cust_spend[cust[anchors]]), 0.4) * rng.uniform(1.5, 4.0, n_it),
                pay=_card_of(pay[anchors]),
                channel=rng.choice([CH_CHIP, CH_CONTACTLESS], n_it),
                device=np.full(n_it, -1),
                scenario=np.full(n_it, SCENARIOS.index("impossible_travel"), dtype=np.int8),
            )
        )

    report(0.60, "Assembling columns")
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.argsort(cols["secs"], kind="stable")
    cols = {k: v[order] for k, v in cols.items()}
    return _assemble(cfg, world, cols, rng)


def _card_of(pay: np.ndarray) -> np.ndarray:
    """Card fraud needs a card: wallets fall back to the most common card."""
    return np.where(np.isin(pay, [PAYMENT_METHODS.index(w) for w in WALLETS]), 0, pay)


def _assemble(cfg: SyntheticConfig, world: _World, c: dict[str, np.ndarray], rng: np.random.Generator) -> pd.DataFrame:
    n = len(c["secs"])
    start = np.datetime64(cfg.start.isoformat(), "s")
    merch, cust, device = c["merch"], c["cust"], c["device"]
    digital = np.isin(c["channel"], DIGITAL_CHANNELS)
    has_device = digital & (device >= 0)
    # A device seen before keeps the customer's home IP; a fraudster's device comes with its own.
    known_device = device < world.n_devices
    fraud_ip = np.char.add("45.", rng.integers(10, 250, n).astype(str))
    ip = np.where(known_device, world.cust_ip[cust], fraud_ip + ".7.1")

    def cat(codes: np.ndarray, labels) -> pd.Categorical:
        return pd.Categorical.from_codes(codes, categories=list(labels))

    scenario = c["scenario"].astype(np.int16)
    frame = pd.DataFrame(
        {
            "transaction_id": np.char.add("TX", np.char.zfill(np.arange(1, n + 1).astype(str), 9)),
            "ts": start + c["secs"].astype("timedelta64[s]"),
            "amount": np.round(c["amount"], 2),
            "customer_id": np.char.add("C", np.char.zfill(cust.astype(str), 7)),
            "merchant_id": np.char.add("M", np.char.zfill(merch.astype(str), 6)),
            "merchant_name": world.merch_name[merch],
            "merchant_category": cat(world.merch_cat[merch], CATEGORY_NAMES),
            "mcc": np.array([x.mcc for x in CATEGORIES])[world.merch_cat[merch]],
            "city": world.places["city"].to_numpy()[world.merch_place[merch]],
            "district": world.places["place"].to_numpy()[world.merch_place[merch]],
            "department": world.places["department"].to_numpy()[world.merch_place[merch]],
            "lat": np.round(world.merch_lat[merch], 5),
            "lon": np.round(world.merch_lon[merch], 5),
            "channel": cat(c["channel"], CHANNELS),
            "payment_method": cat(c["pay"], PAYMENT_METHODS),
            "device_id": np.where(has_device, np.char.add("D", np.char.zfill(np.maximum(device, 0).astype(str), 8)), None),
            "ip_address": np.where(has_device, ip, None),
            "customer_age": world.cust_age[cust],
            "account_age_days": world.cust_account_age[cust],
            "is_fraud": scenario >= 0,
            "fraud_scenario": pd.Categorical.from_codes(scenario, categories=list(SCENARIOS)),
        }
    )
    return frame


# Roles of the generated columns; every other column is kept as a categorical or numeric extra.
SYNTHETIC_ROLES = {
    "transaction_id": "transaction_id", "ts": "timestamp", "amount": "amount", "customer_id": "customer_id",
    "merchant_id": "merchant_id", "device_id": "device_id", "city": "city", "lat": "lat", "lon": "lon",
    "is_fraud": "label", "fraud_scenario": "fraud_scenario",
}
SYNTHETIC_NUMERIC = ("customer_age", "account_age_days")


def store_synthetic(
    conn: duckdb.DuckDBPyConnection, name: str, config: SyntheticConfig | None = None, progress: ProgressFn | None = None,
) -> Dataset:
    """Generate a dataset and store it under `name`, inside the caller's transaction (like an import)."""
    cfg = (config or SyntheticConfig()).validated()
    report = progress or no_progress
    frame = generate_transactions(cfg, progress=lambda f, m: report(f * 0.7, m))
    report(0.75, f"Writing {len(frame):,} rows to DuckDB")
    columns = [StoredColumn("tx_row", "tx_row", None)]
    frame.insert(0, "tx_row", np.arange(len(frame), dtype=np.int64))  # the frame is in time order
    exprs = ["tx_row"]
    for col in frame.columns[1:]:
        role = SYNTHETIC_ROLES.get(col) or ("numeric" if col in SYNTHETIC_NUMERIC else "categorical")
        sql_type = {"ts": "TIMESTAMP", "amount": "DOUBLE", "lat": "DOUBLE", "lon": "DOUBLE", "is_fraud": "BOOLEAN"}.get(
            col, "DOUBLE" if role == "numeric" else "VARCHAR")
        exprs.append(f"CAST({quote_ident(col)} AS {sql_type}) AS {quote_ident(col)}")
        columns.append(StoredColumn(col, role, col))
    view = f"_synthetic_{id(frame)}"
    conn.register(view, frame)
    try:
        with new_dataset(conn, name, "synthetic") as new:
            conn.execute(f"CREATE TABLE {new.table} AS SELECT {', '.join(exprs)} FROM {quote_ident(view)}")
            new.columns = columns
            new.report = {"generator": {"rows": cfg.rows, "seed": cfg.seed, "fraud_rate": cfg.fraud_rate,
                                        "start": cfg.start.isoformat(), "days": cfg.days}}
    finally:
        conn.unregister(view)
    dataset = get_dataset(conn, new.id)
    report(1.0, f"Generated {dataset.row_count:,} rows")
    return dataset
