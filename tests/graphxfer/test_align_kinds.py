"""Tests of the kind conversions of Cohort.align (graphxfer.align): the accepted pairs are
converted, warned about and recorded; every other difference of kind is refused."""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pandas as pd
import pytest

from graphxfer import AlignmentReport, Cohort, Schema
from graphxfer.cohort import COERCIONS, KindCoercionWarning
from graphxfer.exceptions import OutOfBoundsError, TypeMismatchError
from graphxfer.schema import Column

KINDS = ("numeric", "binary", "categorical", "ordinal")
LEVELS = ["low", "mid", "high"]
# one column "x" of each kind here, and the same column as the source declares it
OWN_VALUES = {
    "numeric": [1.0, 2.0, 1.0, 3.0],
    "binary": [0, 1, 1, 0],
    "categorical": ["a", "b", "a", "c"],
    "ordinal": ["low", "mid", "high", "low"],
}
OWN_COLUMNS = {
    "numeric": Column("x"),
    "binary": Column("x", "binary"),
    "categorical": Column("x", "categorical", categories=["a", "b", "c"]),
    "ordinal": Column("x", "ordinal", levels=LEVELS),
}
SOURCE_COLUMNS = {
    "numeric": Column("x", lower=0, upper=10),
    "binary": Column("x", "binary"),
    "categorical": Column("x", "categorical", categories=["0", "1", "2", "3"]),
    "ordinal": Column("x", "ordinal", levels=LEVELS),
}
# what the accepted pairs turn the values above into
COERCED = {
    ("binary", "numeric"): [0.0, 1.0, 1.0, 0.0],
    ("ordinal", "numeric"): [0.0, 1.0, 2.0, 0.0],  # text levels: their position
    ("numeric", "categorical"): ["1", "2", "1", "3"],
    ("binary", "categorical"): ["0", "1", "1", "0"],
}


def one_column(kind: str, values=None, column: Column | None = None) -> Cohort:
    df = pd.DataFrame({"x": OWN_VALUES[kind] if values is None else values, "y": [0, 1, 0, 1]})
    schema = Schema([column or OWN_COLUMNS[kind], Column("y", "binary", "target")])
    return Cohort(df, schema)


def source_with(column: Column) -> Schema:
    return Schema([column, Column("y", "binary", "target")])


def test_the_accepted_pairs_are_the_documented_ones():
    assert set(COERCIONS) == set(COERCED)


@pytest.mark.parametrize(("own", "src"), list(COERCED))
def test_compatible_kinds_are_converted_warned_and_recorded(own, src):
    with pytest.warns(KindCoercionWarning) as caught:
        aligned, report = one_column(own).align(source_with(SOURCE_COLUMNS[src]))
    assert len(caught) == 1
    message = str(caught[0].message)
    assert f"'x' {own} -> {src}" in message
    assert not any(repr(level) in message for level in LEVELS)  # the rule, not the labels
    assert aligned.data["x"].tolist() == COERCED[(own, src)]
    assert aligned.schema["x"] == SOURCE_COLUMNS[src]  # the source's kind, bounds, vocabulary
    assert report.matched == ["x", "y"]
    assert report.coerced["x"]["from"] == own and report.coerced["x"]["to"] == src
    assert report.coerced["x"]["values"]
    assert f"coerced   (1): x ({own} -> {src})" in str(report)
    # the released alignment (model card, CLI) says the same, with or without privacy
    from graphxfer.release import format_alignment, released_alignment

    for private in (False, True):
        released = format_alignment(released_alignment(report, private))
        assert f"coerced   (1): x ({own} -> {src})" in released
    back = json.loads(json.dumps(report.to_dict()))
    assert back["coerced"] == report.coerced
    assert AlignmentReport(**{**back, "converted": {}}).coerced == report.coerced


REFUSED = [pair for pair in itertools.permutations(KINDS, 2) if pair not in COERCED]


@pytest.mark.parametrize(("own", "src"), REFUSED)
def test_conflicting_kinds_are_refused_naming_the_column(own, src):
    pattern = rf"column 'x' is {own} here but source column 'x' is {src}; .*map the column"
    with pytest.raises(TypeMismatchError, match=pattern):
        one_column(own).align(source_with(SOURCE_COLUMNS[src]))


def test_categories_are_not_turned_into_numbers():
    cohort = one_column("categorical", ["1", "2", "1", "3"], Column("x", "categorical"))
    with pytest.raises(
        TypeMismatchError, match=r"'x' is categorical here.*no order or scale.*declare the column"
    ):
        cohort.align(source_with(SOURCE_COLUMNS["numeric"]))


@pytest.mark.parametrize(
    ("labels", "expected", "how"),
    [
        (None, [0.0, 1.0, 1.0, 0.0], "the labels' own numbers"),
        (["1", "2"], [1.0, 2.0, 2.0, 1.0], "the labels' own numbers"),
        (["no", "yes"], [0.0, 1.0, 1.0, 0.0], "0 for the negative label, 1 for the positive"),
    ],
)
def test_binary_into_numeric_uses_the_labels_numbers_or_positions(labels, expected, how):
    raw = [0, 1, 1, 0] if labels is None else [labels[i] for i in (0, 1, 1, 0)]
    cohort = one_column("binary", raw, Column("x", "binary", categories=labels))
    with pytest.warns(KindCoercionWarning, match=re.escape(how)):
        aligned, report = cohort.align(source_with(SOURCE_COLUMNS["numeric"]))
    assert aligned.data["x"].tolist() == expected
    assert report.coerced["x"]["values"] == how


def test_ordinal_into_numeric_uses_numeric_levels_as_numbers():
    column = Column("x", "ordinal", levels=[1, 2, 5])
    with pytest.warns(
        KindCoercionWarning, match=r"'x' ordinal -> numeric \(the levels' own numbers\)"
    ):
        aligned, _ = one_column("ordinal", [5, 1, None, 2], column).align(
            source_with(SOURCE_COLUMNS["numeric"])
        )
    np.testing.assert_array_equal(aligned.data["x"].to_numpy(), [5.0, 1.0, np.nan, 2.0])
    # the source's bounds still hold after the conversion
    with (
        pytest.warns(KindCoercionWarning),
        pytest.raises(OutOfBoundsError, match=r"'x' holds values \[5.0\] above its upper bound 3"),
    ):
        one_column("ordinal", [5, 1, None, 2], column).align(
            source_with(Column("x", lower=0, upper=3))
        )


def test_numbers_into_an_open_vocabulary_are_refused():
    with pytest.raises(
        TypeMismatchError, match=r"'x' is numeric here .*categorical with an open vocabulary"
    ):
        one_column("numeric").align(source_with(Column("x", "categorical")))


def test_numbers_outside_the_declared_vocabulary_are_refused_with_rows():
    cohort = one_column("numeric", [1.0, 2.5, 1.0, 7.0])
    with pytest.raises(
        TypeMismatchError, match=r"its values \['2.5', '7'\] \(rows 1, 3\) are not categories"
    ):
        cohort.align(source_with(SOURCE_COLUMNS["categorical"]))
    cohort = one_column("binary", [0, 1, 1, 0], Column("x", "binary", categories=["n", "y"]))
    with pytest.raises(TypeMismatchError, match=r"its values \['n', 'y'\]"):
        cohort.align(source_with(SOURCE_COLUMNS["categorical"]))


def test_one_warning_names_every_converted_column():
    df = pd.DataFrame({"a": [0, 1, 0, 1], "b": [1.0, 2.0, 3.0, 1.0], "y": [0, 1, 0, 1]})
    cohort = Cohort(df, Schema.infer(df, target="y"))
    src = Schema(
        [
            Column("a"),
            Column("b", "categorical", categories=["1", "2", "3"]),
            Column("y", "binary", "target"),
        ]
    )
    with pytest.warns(KindCoercionWarning) as caught:
        _, report = cohort.align(src)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "'a' binary -> numeric" in message and "'b' numeric -> categorical" in message
    assert list(report.coerced) == ["a", "b"]


def test_a_small_site_infers_a_sparse_column_as_binary_and_still_aligns():
    """VA measured ``ca`` (a count, 0-3) for two patients, both 0: inferred binary there,
    numeric at Cleveland."""
    from graphxfer.datasets._heart import _read_site

    frames = {site: _read_site(site) for site in ("cleveland", "va")}
    for frame in frames.values():
        frame["sick"] = (frame.pop("num") > 0).astype(int)
    schemas = {
        site: Schema.infer(frame, target="sick", id="record_id", group="site")
        for site, frame in frames.items()
    }
    assert schemas["cleveland"]["ca"].kind == "numeric" and schemas["va"]["ca"].kind == "binary"
    va = Cohort(frames["va"], schemas["va"])
    with pytest.warns(KindCoercionWarning, match=r"'ca' binary -> numeric"):
        aligned, report = va.align(schemas["cleveland"])
    assert report.coerced == {
        "ca": {"from": "binary", "to": "numeric", "values": "the labels' own numbers"}
    }
    ca = aligned.data["ca"]
    assert ca.notna().sum() == 2 and (ca.dropna() == 0.0).all()
    assert aligned.schema["ca"].kind == "numeric"


def test_alignment_names_keep_importing_from_graphxfer_cohort():
    import graphxfer
    import graphxfer.align
    import graphxfer.canonical
    import graphxfer.cohort

    assert graphxfer.cohort.COERCIONS is graphxfer.align.COERCIONS
    assert graphxfer.cohort.KindCoercionWarning is graphxfer.align.KindCoercionWarning
    assert graphxfer.AlignmentReport is graphxfer.align.AlignmentReport
    assert graphxfer.cohort.UNKNOWN == graphxfer.canonical.UNKNOWN == "<unknown>"
