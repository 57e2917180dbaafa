"""The market-depth row schema shared by every stage.

A row is one snapshot of the order book around the mid price, as the seed
crawler writes it: ``timestamp`` (ISO-8601, UTC), ``blr`` (buy-side liquidity
ratio = buy depth / sell depth), ``buy_volume`` and ``sell_volume`` (depth on
each side) and ``mid_price``. Files may carry ``alert_triggered`` (the
crawler's own ``blr < 0.4`` flag) and, for synthetic scenarios, ground-truth
columns that say which episode, scenario family and phase a row belongs to.
"""

from __future__ import annotations

TIMESTAMP = "timestamp"
BLR = "blr"
BUY_VOLUME = "buy_volume"
SELL_VOLUME = "sell_volume"
MID_PRICE = "mid_price"

#: Columns every market-depth file must have, in canonical order.
REQUIRED_COLUMNS: tuple[str, ...] = (TIMESTAMP, BLR, BUY_VOLUME, SELL_VOLUME, MID_PRICE)

#: The numeric features the model reads from each row, in model input order.
FEATURES: tuple[str, ...] = (BLR, BUY_VOLUME, SELL_VOLUME, MID_PRICE)

#: Optional column written by the seed crawler.
ALERT_TRIGGERED = "alert_triggered"

# Ground truth written by the synthetic generator (absent from real feeds).
EPISODE = "episode"
FAMILY = "family"
PHASE = "phase"
CRASH_ONSET = "crash_onset"
TRUTH_COLUMNS: tuple[str, ...] = (EPISODE, FAMILY, PHASE, CRASH_ONSET)

# Phases. A crash runs from its onset (first row of ``crash``) to its price
# bottom (last row of ``crash``); ``stress`` rows precede some crashes and are
# not part of the crash; each hard negative's event rows carry its family's name
# (``dip``, ``spike``, ``drift``, ``withdrawal``, ``move``) and count as healthy.
HEALTHY = "healthy"
STRESS = "stress"
CRASH = "crash"
RECOVERY = "recovery"
DIP = "dip"
SPIKE = "spike"
DRIFT = "drift"
WITHDRAWAL = "withdrawal"
MOVE = "move"
PHASES: tuple[str, ...] = (HEALTHY, STRESS, CRASH, RECOVERY, DIP, SPIKE, DRIFT, WITHDRAWAL, MOVE)

# Scenario families.
DRAIN = "drain"
FLASH = "flash"
BLEED = "bleed"
CRASH_FAMILIES: tuple[str, ...] = (DRAIN, FLASH, BLEED)
HARD_NEGATIVE_FAMILIES: tuple[str, ...] = (DIP, SPIKE, DRIFT, WITHDRAWAL, MOVE)
#: Phases of rows that are healthy for evaluation: a trip on one is a false trip (hard negatives included).
HEALTHY_PHASES: tuple[str, ...] = (HEALTHY, *HARD_NEGATIVE_FAMILIES)
FAMILIES: tuple[str, ...] = CRASH_FAMILIES + HARD_NEGATIVE_FAMILIES
