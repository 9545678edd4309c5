"""``graphxfer finetune --epsilon --test-size`` holds persons out independently, by secret
randomness: a seeded, stratified split would let one person decide who else is trained on."""

from __future__ import annotations

import numpy as np
import pytest

from graphxfer import datasets
from graphxfer.cli import UserError
from graphxfer.cli._train import private_holdout


@pytest.fixture(scope="module")
def va():
    return datasets.load_heart_disease().select_groups("va")


def test_each_person_is_held_out_by_an_unseeded_draw(va, monkeypatch) -> None:
    calls: list[tuple] = []
    real = np.random.default_rng

    def spy(*args, **kwargs):
        calls.append(args + tuple(kwargs.values()))
        return real(*args, **kwargs)

    monkeypatch.setattr(np.random, "default_rng", spy)
    train, test = private_holdout(va, 0.3)
    assert calls == [()]  # operating-system entropy, no seed
    assert len(train) + len(test) == len(va)
    assert set(train.data.index).isdisjoint(test.data.index)


def test_the_split_is_neither_seeded_nor_stratified(va) -> None:
    draws = [frozenset(private_holdout(va, 0.3)[1].data.index) for _ in range(5)]
    assert len(set(draws)) == 5  # a new draw every time (equal by chance: ~2**-200)
    shares = [len(d) / len(va) for d in draws]
    assert all(0.15 < s < 0.45 for s in shares)  # Binomial(200, 0.3) / 200


def test_a_persons_presence_changes_only_its_own_side(va, monkeypatch) -> None:
    # with the same draws, removing the last person leaves everyone else where they were
    def fixed(*args, **kwargs):
        return np.random.Generator(np.random.PCG64(7))

    monkeypatch.setattr(np.random, "default_rng", fixed)
    _, test_all = private_holdout(va, 0.3)
    fewer = va.subset(np.arange(len(va)) < len(va) - 1)
    _, test_fewer = private_holdout(fewer, 0.3)
    assert set(test_fewer.data.index) == set(test_all.data.index) - {va.data.index[-1]}


def test_rows_of_one_person_stay_together() -> None:
    import pandas as pd

    from graphxfer import Cohort, Schema

    frame = pd.DataFrame({
        "pid": np.repeat(np.arange(40), 3),
        "x": np.arange(120, dtype=float) % 7 + 0.5,
        "y": np.tile([0, 1, 1], 40),
    })  # fmt: skip
    cohort = Cohort(frame, Schema.infer(frame, target="y", id="pid"), repeated_ids="allow")
    train, test = private_holdout(cohort, 0.5)
    assert set(train.ids).isdisjoint(set(test.ids))
    assert len(train) % 3 == 0 and len(test) % 3 == 0


def test_a_draw_with_everyone_on_one_side_is_a_clear_error(va, monkeypatch) -> None:
    class AllHeld:
        def random(self, n):
            return np.zeros(n)

    monkeypatch.setattr(np.random, "default_rng", lambda *a, **k: AllHeld())
    with pytest.raises(UserError, match="every one of the 200 persons on one side"):
        private_holdout(va, 0.3, where="va.csv")


def test_finetune_with_epsilon_holds_out_by_the_private_draw(tmp_path, monkeypatch, capsys) -> None:
    import warnings

    import graphxfer as gx
    import graphxfer.cli._train as train_cli
    from graphxfer.cli import main

    heart = datasets.load_heart_disease()
    encoder = gx.pretrain(
        heart.select_groups("cleveland"), "linear", progress=False, random_state=0
    )
    encoder.save(tmp_path / "enc")
    drawn: list[int] = []
    real = train_cli.private_holdout

    def spy(cohort, share, **kwargs):
        train, test = real(cohort, share, **kwargs)
        drawn.append(len(test))
        return train, test

    monkeypatch.setattr(train_cli, "private_holdout", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = main(["finetune", "--dataset", "heart-disease", "--sites", "va",
                       "--encoder", str(tmp_path / "enc"), "--epsilon", "3",
                       "--test-size", "0.3", "--n-boot", "50", "--no-progress",
                       "--device", "cpu", "--out", str(tmp_path / "model")])  # fmt: skip
    assert status == 0
    assert len(drawn) == 1
    out = capsys.readouterr().out
    assert f"held-out metrics on {drawn[0]:,} records" in out
    # the Python API's defaults: anchored, the private guard, settings for the target size
    assert "fine-tuned (anchored)" in out
    assert "Negative-transfer check: passed: the private guard shipped the" in out or (
        "Negative-transfer check: FAILED: the private guard shipped the" in out
    )
    assert "DP hyper-parameters (defaults for small targets" in out
    assert (tmp_path / "model-test.csv").is_file()
