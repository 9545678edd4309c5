"""PrivacyConfig and TrainConfig: validation on construction, delta rules, round trips."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from privacy import (
    DeltaTooLargeError,
    PrivacyConfig,
    PrivacyConfigError,
    PrivacyError,
    TrainConfig,
    default_delta,
)


def test_defaults_are_valid_and_documented_values() -> None:
    cfg = PrivacyConfig(epsilon=1.0)
    assert cfg.delta is None
    assert cfg.accountant == "prv"
    assert cfg.max_grad_norm == 1.0
    assert cfg.batch_size == 64
    assert cfg.max_physical_batch_size == 256
    assert cfg.grad_sample_mode == "hooks"
    assert cfg.min_records is None
    assert cfg.minimum_records(person_level=False) == 50
    assert cfg.minimum_records(person_level=True) == 20
    assert PrivacyConfig(epsilon=1.0, min_records=7).minimum_records(person_level=False) == 7
    assert cfg.secure_mode is False


def test_config_is_frozen_and_keyword_only() -> None:
    cfg = PrivacyConfig(epsilon=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epsilon = 2.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        PrivacyConfig(1.0)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"epsilon": 0}, "epsilon"),
        ({"epsilon": -1.0}, "epsilon"),
        ({"epsilon": math.nan}, "epsilon"),
        ({"epsilon": math.inf}, "epsilon"),
        ({"epsilon": "1"}, "epsilon"),
        ({"epsilon": True}, "epsilon"),
        ({"epsilon": 1.0, "delta": 0.0}, "delta"),
        ({"epsilon": 1.0, "delta": 1.0}, "delta"),
        ({"epsilon": 1.0, "max_grad_norm": 0}, "max_grad_norm"),
        ({"epsilon": 1.0, "accountant": "moments"}, "accountant"),
        ({"epsilon": 1.0, "epochs": 0}, "epochs"),
        ({"epsilon": 1.0, "epochs": 2.5}, "epochs"),
        ({"epsilon": 1.0, "batch_size": 0}, "batch_size"),
        ({"epsilon": 1.0, "max_physical_batch_size": -3}, "max_physical_batch_size"),
        ({"epsilon": 1.0, "grad_sample_mode": "jax"}, "grad_sample_mode"),
        ({"epsilon": 1.0, "secure_mode": "yes"}, "secure_mode"),
        ({"epsilon": 1.0, "learning_rate": 0.0}, "learning_rate"),
        ({"epsilon": 1.0, "optimizer": "rmsprop"}, "optimizer"),
        ({"epsilon": 2.0, "total_budget": 1.0}, "total_budget"),
        ({"epsilon": 1.0, "min_records": 0}, "min_records"),
    ],
)
def test_invalid_values_name_the_parameter(kwargs: dict, parameter: str) -> None:
    with pytest.raises(PrivacyConfigError, match=parameter) as info:
        PrivacyConfig(**kwargs)
    assert isinstance(info.value, PrivacyError)
    assert isinstance(info.value, ValueError)


def test_json_round_trip() -> None:
    cfg = PrivacyConfig(epsilon=2.5, delta=1e-6, accountant="rdp", epochs=3, total_budget=5.0)
    assert PrivacyConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(PrivacyConfigError, match="unknown key"):
        PrivacyConfig.from_dict({"epsilon": 1.0, "noise": 3.0})


def test_default_delta_is_well_below_one_over_n() -> None:
    assert default_delta(1000) == 1e-5
    assert default_delta(1_000_000) == pytest.approx(1_000_000**-1.1)
    for n in (50, 1000, 10**5, 10**7):
        assert default_delta(n) < 1 / n


def test_resolve_delta_refuses_delta_at_or_above_one_over_n() -> None:
    cfg = PrivacyConfig(epsilon=1.0, delta=0.01)
    assert cfg.resolve_delta(50) == 0.01
    with pytest.raises(DeltaTooLargeError, match="1/n_persons"):
        cfg.resolve_delta(100)
    assert PrivacyConfig(epsilon=1.0).resolve_delta(200) == 1e-5


def test_train_config_matches_privacy_config() -> None:
    cfg = PrivacyConfig(epsilon=1.0, epochs=4, batch_size=32, learning_rate=0.01, optimizer="sgd")
    tc = TrainConfig.matching(cfg)
    assert (tc.epochs, tc.batch_size, tc.learning_rate, tc.optimizer) == (4, 32, 0.01, "sgd")
    assert TrainConfig.from_dict(tc.to_dict()) == tc
    with pytest.raises(PrivacyConfigError, match="batch_size"):
        TrainConfig(batch_size=0)
