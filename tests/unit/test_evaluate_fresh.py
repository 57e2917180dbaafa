"""Evaluation at scale: intervals, the default number of fresh episodes, a small fresh run and real feeds."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sentinel.data import schema
from sentinel.data.synthetic import CLASSIC, DEFAULT_MIX, RANGES, RANGES_MIX, UNSEEN_REGION, family_mix, generate
from sentinel.errors import DataError, ModelError
from sentinel.model.baselines import BlrThreshold, Detector, OrderImbalance, SeedRule
from sentinel.model.evaluate import (
    distribution,
    fresh_episodes,
    fresh_evaluation,
    poisson_interval,
    real_feed_result,
    trip_rate,
    wilson,
)
from sentinel.model.policy import TripPolicy

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("k", "n", "lo", "hi"), [
    (5, 10, 0.2366, 0.7634),  # textbook values (Newcombe 1998 gives 0/10 -> 0-0.2775 too)
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (111, 131, 0.7759, 0.8989),  # issue 22's table: 0.78-0.90
    (251, 251, 0.9849, 1.0),  # 0.985-1.0
    (10, 142, 0.0387, 0.1248),  # 0.04-0.125
])
def test_wilson_matches_known_values(k, n, lo, hi):
    got = wilson(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-4)
    assert got[0] <= k / n <= got[1]


def test_wilson_narrows_with_n_and_refuses_impossible_counts():
    assert np.diff(wilson(50, 100))[0] < np.diff(wilson(5, 10))[0]
    assert np.diff(wilson(50, 100, z=2.576))[0] > np.diff(wilson(50, 100))[0]  # 99 % is wider than 95 %
    for k, n in ((0, 0), (3, 2), (-1, 5)):
        with pytest.raises(ModelError, match="proportion"):
            wilson(k, n)


@pytest.mark.parametrize(("k", "lo", "hi"), [
    # exact (Garwood) 95 % limits of a Poisson mean, as tabulated (e.g. Ulm 1990)
    (0, 0.0, 3.689),
    (1, 0.0253, 5.572),
    (2, 0.2422, 7.225),
    (5, 1.6235, 11.668),
    (10, 4.7954, 18.390),
    (100, 81.364, 121.627),
])
def test_poisson_interval_matches_the_exact_tables(k, lo, hi):
    assert poisson_interval(k) == pytest.approx((lo, hi), abs=1e-3)


def test_poisson_interval_refuses_a_negative_count():
    with pytest.raises(ModelError, match="count"):
        poisson_interval(-1)


def test_false_trip_rate_scales_the_count_interval_to_10k_rows():
    rate = trip_rate(16, 221_931)  # issue 22: 16 false trips in 221,931 healthy rows
    assert rate["per_10k"] == pytest.approx(0.72, abs=0.005)
    lo, hi = poisson_interval(16)
    assert rate["ci95"] == pytest.approx([lo * 1e4 / 221_931, hi * 1e4 / 221_931])
    assert rate["ci95"][0] < rate["per_10k"] < rate["ci95"][1]
    assert trip_rate(0, 0) == {"count": 0, "healthy_rows": 0, "per_10k": None, "ci95": None}


def test_default_fresh_episodes_give_every_family_enough_events():
    z = 2.326
    for families in (None, ["drain", "flash"], ["bleed", "dip", "spike"]):
        n = fresh_episodes(families)
        p = min(family_mix(families, RANGES).values())

        def margin(episodes: int, p: float = p) -> float:
            return episodes * p - z * math.sqrt(episodes * p * (1 - p))

        assert margin(n) >= 100 > margin(n - 1), families  # the smallest such N
    assert fresh_episodes() == 1247  # the ranges space's mix: its rarest families are 10 % of episodes
    assert fresh_episodes(scenarios=CLASSIC) == 886  # the classic mix: flash and bleed are 14 %
    assert fresh_episodes(["drain"]) == 100  # one family: every episode is one of its events
    assert fresh_episodes(["drain"], per_family=7) == 7


def test_default_fresh_episodes_refuse_unknown_families():
    with pytest.raises(DataError, match="unknown scenario family 'meteor'"):
        fresh_episodes(["drain", "meteor"])
    with pytest.raises(ModelError, match="per family"):
        fresh_episodes(per_family=0)


def test_family_mix_is_what_generate_draws():
    assert family_mix() == pytest.approx({f: w / sum(DEFAULT_MIX.values()) for f, w in DEFAULT_MIX.items()})
    ranges = family_mix(scenarios=RANGES)
    assert ranges == pytest.approx({f: w / sum(RANGES_MIX.values()) for f, w in RANGES_MIX.items()})
    assert family_mix(["flash", "dip", "flash"]) == {"flash": 0.5, "dip": 0.5}
    families = set(generate(8, seed=1, families=["flash", "dip"]).frame[schema.FAMILY])
    assert families <= {"flash", "dip"}


def test_distribution_reports_median_and_deciles():
    d = distribution(list(range(1, 11)))
    assert d == pytest.approx({"n": 10, "median": 5.5, "p10": 1.9, "p90": 9.1})
    assert distribution([]) == {"n": 0, "median": None, "p10": None, "p90": None}


@pytest.fixture(scope="module")
def fresh_market():
    return generate(24, seed=31)


def test_a_small_fresh_run_counts_every_event_once(fresh_market):
    fixed = TripPolicy(0.5, 0.5, 3, 10)
    detectors: list[tuple[Detector, TripPolicy]] = [
        (SeedRule(), fixed), (BlrThreshold(), TripPolicy(0.9, 0.45, 3, 10)), (OrderImbalance(), fixed)]
    result = fresh_evaluation(fresh_market, detectors, window=50, horizon=30, false_trip_budget=1.0)

    frame = fresh_market.frame.drop_duplicates(schema.EPISODE)
    truth = frame[schema.FAMILY].value_counts().to_dict()
    assert result["episodes"] == 24 and result["rows"] == len(fresh_market)
    assert result["episodes_per_family"] == truth
    assert result["crash_families"] == [f for f in schema.CRASH_FAMILIES if f in truth]
    assert set(result["detectors"]) == {"seed_rule", "blr_threshold", "order_imbalance"}
    assert result["verdict"]["details"]  # the first detector against the others
    healthy = {r["false_trips"]["healthy_rows"] for r in result["detectors"].values()}
    assert len(healthy) == 1 and healthy.pop() > 0  # the same windows for every detector

    for (detector, policy), r in zip(detectors, result["detectors"].values(), strict=True):
        assert r["policy"] == policy.to_dict()  # the policy given, never re-tuned
        total_k = total_n = 0
        for family, fam in r["families"].items():
            assert fam["events"] == truth[family]  # every crash episode is one event
            assert 0 <= fam["detected"] <= fam["events"]
            assert fam["recall"] == fam["detected"] / fam["events"]
            assert fam["ci95"] == pytest.approx(list(wilson(fam["detected"], fam["events"])))
            total_k += fam["detected"]
            total_n += fam["events"]
        assert (r["all_crashes"]["detected"], r["all_crashes"]["events"]) == (total_k, total_n)
        assert r["lead_rows"]["n"] == r["drawdown_at_trip"]["n"] == total_k, detector.name
    seed_rule = result["detectors"]["seed_rule"]
    assert seed_rule["all_crashes"]["detected"] > 0  # the run exercises detections, not only zeros
    assert seed_rule["drawdown_at_trip"]["median"] < 0  # price already fell at the trip


def test_the_unseen_region_is_reported_apart_and_its_healthy_rows_join_the_false_trips():
    market = generate(30, seed=41, scenarios=RANGES)
    unseen = generate(12, seed=41, scenarios=RANGES, region=UNSEEN_REGION)
    always = TripPolicy(0.5, 0.5, 3, 10)
    detectors: list[tuple[Detector, TripPolicy]] = [(SeedRule(), always), (OrderImbalance(), always)]
    alone = fresh_evaluation(market, detectors, window=50, horizon=30, false_trip_budget=1.0)
    both = fresh_evaluation(market, detectors, window=50, horizon=30, false_trip_budget=1.0, unseen=unseen)

    per_family = unseen.frame.drop_duplicates(schema.EPISODE)[schema.FAMILY].value_counts().to_dict()
    assert both["unseen_region"]["episodes_per_family"] == per_family
    assert "unseen_region" not in alone and "unseen_region" not in alone["detectors"]["seed_rule"]
    for name, r in both["detectors"].items():
        region = r["unseen_region"]
        assert {f: v["events"] for f, v in region["families"].items()} == per_family
        assert region["all_crashes"]["events"] == 12
        assert region["all_crashes"]["ci95"] == pytest.approx(
            list(wilson(region["all_crashes"]["detected"], 12)))
        assert region["lead_rows"]["n"] == region["all_crashes"]["detected"]
        # the families' figures are those of the training region's episodes alone
        assert r["families"] == alone["detectors"][name]["families"]
        assert r["lead_rows"] == alone["detectors"][name]["lead_rows"]
        # the unseen episodes' healthy rows join the false-trip exposure
        assert r["false_trips"]["healthy_rows"] > alone["detectors"][name]["false_trips"]["healthy_rows"]
        # every hard negative of the run has its own rate, its trips among the false trips
        assert set(r["hard_negatives"]) == set(market.frame[schema.FAMILY]) & set(schema.HARD_NEGATIVE_FAMILIES)
        assert sum(v["count"] for v in r["hard_negatives"].values()) <= r["false_trips"]["count"]


def test_real_feed_trips_are_false_trips_with_their_timestamps():
    policy = TripPolicy(0.8, 0.3, trip_after=2, reset_after=2)
    scores = np.array([0.1, 0.9, 0.95, 0.9, 0.2, 0.1, 0.85, 0.9, 0.5])
    ends = np.arange(len(scores)) + 49
    times = [f"t{i}" for i in range(len(scores))]
    r = real_feed_result(scores, ends, times, policy)
    assert r["windows"] == 9
    assert r["trips"] == [{"end_row": 52, "window_end": "t2", "score": 0.95},
                          {"end_row": 57, "window_end": "t7", "score": 0.9}]
    assert r["false_trips"]["count"] == 2
    assert r["false_trips"]["per_10k"] == pytest.approx(2e4 / 9)
    assert r["score"] == pytest.approx({"min": 0.1, "median": 0.85, "p95": 0.93, "max": 0.95})
    empty = real_feed_result(np.zeros(0), np.zeros(0, np.int64), [], policy)
    assert (empty["windows"], empty["trips"], empty["score"]["max"]) == (0, [], None)


# --- bad input: one line, non-zero exit, before any model loads -------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (("--fresh", "0"), "error: --fresh: the number of episodes must be >= 1, got 0"),
    (("--fresh", "5", "--families", "drain,meteor"), "error: unknown scenario family 'meteor'"),
    (("--real", "missing.csv"), "missing.csv: file does not exist"),
])
def test_evaluate_bad_input_exits_1_with_one_line(run_cli, tmp_path, args, message):
    code, out, err = run_cli("--root", tmp_path, "evaluate", *args)
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert message in err


def test_evaluate_refuses_the_training_seed(run_cli):
    code, _, err = run_cli("--root", ROOT, "evaluate", "--fresh", "3", "--seed", "7")
    assert code == 1
    assert "--seed 7 is the training data's seed" in err


@pytest.mark.parametrize("args", [
    ("--fresh", "ten"), ("--fresh", "5", "--real", "a.csv"), ("--seed", "3"), ("--real",), ("a.csv",),
    ("--fresh", "--data", "a.csv"),
])
def test_evaluate_usage_errors_exit_2(run_cli, tmp_path, args):
    code, _, err = run_cli("--root", tmp_path, "evaluate", *args)
    assert code == 2, err
    assert "Error" in err
