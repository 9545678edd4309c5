"""Diabetes 130-US Hospitals (1999-2008): 30-day readmission."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from graphxfer.cohort import Cohort
from graphxfer.datasets._files import as_categories, data_file, read_bundled_csv
from graphxfer.schema import Column, Schema

__all__ = ["DIABETES_MEDICATIONS", "admission_source_names", "load_diabetes_130"]

DIABETES_MEDICATIONS: tuple[str, ...] = (
    "metformin",
    "repaglinide",
    "nateglinide",
    "chlorpropamide",
    "glimepiride",
    "acetohexamide",
    "glipizide",
    "glyburide",
    "tolbutamide",
    "pioglitazone",
    "rosiglitazone",
    "acarbose",
    "miglitol",
    "troglitazone",
    "tolazamide",
    "examide",
    "citoglipton",
    "insulin",
    "glyburide-metformin",
    "glipizide-metformin",
    "glimepiride-pioglitazone",
    "metformin-rosiglitazone",
    "metformin-pioglitazone",
)
"""The 23 medication columns (No / Steady / Up / Down)."""

_EXPIRED = (11, 19, 20, 21)
_AGE = [f"[{10 * i}-{10 * (i + 1)})" for i in range(10)]
_WEIGHT = [f"[{25 * i}-{25 * (i + 1)})" for i in range(8)] + [">200"]
_RACE = ["AfricanAmerican", "Asian", "Caucasian", "Hispanic", "Other"]
_PAYERS = [
    "BC",
    "CH",
    "CM",
    "CP",
    "DM",
    "FR",
    "HM",
    "MC",
    "MD",
    "MP",
    "OG",
    "OT",
    "PO",
    "SI",
    "SP",
    "UN",
    "WC",
]
_COUNTS = [
    ("num_lab_procedures", 0, 200, "lab tests performed during the encounter"),
    ("num_procedures", 0, 50, "procedures (other than lab tests) performed during the encounter"),
    ("num_medications", 0, 150, "distinct generic drugs administered during the encounter"),
    ("number_outpatient", 0, 100, "outpatient visits in the year before the encounter"),
    ("number_emergency", 0, 100, "emergency visits in the year before the encounter"),
    ("number_inpatient", 0, 100, "inpatient visits in the year before the encounter"),
]


def _id_tables() -> dict[str, dict[int, str]]:
    """The three lookup tables stacked in ``IDs_mapping.csv``: ``{id column: {code: text}}``."""
    with data_file("diabetes_130", "IDs_mapping.csv.gz").open("rb") as handle:
        raw = pd.read_csv(handle, compression="gzip", header=None, dtype=str, keep_default_na=False)
    tables: dict[str, dict[int, str]] = {}
    current: str | None = None
    for code, text in raw.itertuples(index=False):
        code, text = code.strip(), text.strip()
        if code == "" and text == "":
            current = None
        elif current is None:
            current = code
            tables[current] = {}
        else:
            tables[current][int(code)] = text
    return tables


def admission_source_names() -> dict[int, str]:
    """The ``admission_source_id`` codes and their descriptions (from ``IDs_mapping.csv``).

    Returns
    -------
    dict
        ``{code: description}``, e.g. ``{7: "Emergency Room", ...}``. Several codes share a
        description (9 and 15 are both "Not Available").

    Examples
    --------
    >>> from graphxfer.datasets import admission_source_names
    >>> admission_source_names()[7]
    'Emergency Room'
    """
    return dict(_id_tables()["admission_source_id"])


def _schema(tables: dict[str, dict[int, str]]) -> Schema:
    def codes(table: str) -> list[str]:
        return [str(c) for c in sorted(tables[table])]

    cols = [
        Column("encounter_id", "categorical", "ignore", description="hospital encounter"),
        Column(
            "patient_nbr",
            "categorical",
            "id",
            description="patient; a patient may have several encounters",
        ),
        Column(
            "site",
            "categorical",
            "group",
            description="admission source (description of admission_source_id), a proxy site",
        ),
        Column(
            "admission_source_id",
            "categorical",
            "ignore",
            description="admission source code (the site)",
        ),
        Column("race", "categorical", categories=_RACE, description="race"),
        Column(
            "gender",
            "binary",
            categories=["Female", "Male"],
            description="gender ('Unknown/Invalid' is missing)",
        ),
        Column("age", "ordinal", levels=_AGE, description="age band (years)"),
        Column("weight", "ordinal", levels=_WEIGHT, description="weight band (pounds)"),
        Column(
            "admission_type_id",
            "categorical",
            categories=codes("admission_type_id"),
            description="admission type code (1 emergency, 2 urgent, 3 elective, ... see "
            "IDs_mapping.csv)",
        ),
        Column(
            "discharge_disposition_id",
            "categorical",
            categories=codes("discharge_disposition_id"),
            description="discharge disposition code (1 home, 11 expired, ... see IDs_mapping.csv)",
        ),
        Column(
            "time_in_hospital",
            lower=0,
            upper=30,
            unit="days",
            description="days between admission and discharge",
        ),
        Column("payer_code", "categorical", categories=_PAYERS, description="payer"),
        Column(
            "medical_specialty",
            "categorical",
            description="specialty of the admitting physician (open vocabulary)",
        ),
    ]
    cols += [
        Column(name, lower=lo, upper=hi, unit="count", description=d) for name, lo, hi, d in _COUNTS
    ]
    cols += [
        Column(
            f"diag_{i}",
            "categorical",
            description=f"{which} diagnosis, ICD-9 code (open vocabulary)",
        )
        for i, which in ((1, "primary"), (2, "secondary"), (3, "additional secondary"))
    ]
    cols += [
        Column(
            "number_diagnoses",
            lower=0,
            upper=30,
            unit="count",
            description="diagnoses entered into the system",
        ),
        Column(
            "max_glu_serum",
            "categorical",
            categories=["None", "Norm", ">200", ">300"],
            description="glucose serum test result ('None' = not measured)",
        ),
        Column(
            "A1Cresult",
            "categorical",
            categories=["None", "Norm", ">7", ">8"],
            description="HbA1c test result ('None' = not measured)",
        ),
    ]
    cols += [
        Column(
            name,
            "categorical",
            categories=["No", "Steady", "Up", "Down"],
            description=f"{name}: not prescribed, or dose steady / increased / decreased",
        )
        for name in DIABETES_MEDICATIONS
    ]
    cols += [
        Column(
            "change",
            "binary",
            categories=["No", "Ch"],
            description="any change of diabetic medication (dose or drug)",
        ),
        Column(
            "diabetesMed",
            "binary",
            categories=["No", "Yes"],
            description="any diabetic medication prescribed",
        ),
        Column(
            "readmitted_30d",
            "binary",
            "target",
            description="readmitted within 30 days of discharge (readmitted == '<30')",
        ),
    ]
    return Schema(cols, name="diabetes_130")


def _site_codes(sites: int | str | Iterable[int | str] | None, names: dict[int, str]) -> list[int]:
    """Admission-source codes selected by ``sites`` (codes or descriptions)."""
    if sites is None:
        return sorted(names)
    items = [sites] if isinstance(sites, (int, str)) else list(sites)
    if not items:
        raise ValueError("sites is empty; choose admission source codes or descriptions")
    by_name: dict[str, list[int]] = {}
    for code, text in names.items():
        by_name.setdefault(text.casefold(), []).append(code)
    out: list[int] = []
    for item in items:
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if int(item) not in names:
                raise ValueError(
                    f"sites contains code {item!r}, which is not an admission_source_id; "
                    f"known codes: {sorted(names)}"
                )
            found = [int(item)]
        elif isinstance(item, str) and item.strip().casefold() in by_name:
            found = by_name[item.strip().casefold()]
        else:
            known = sorted(set(names.values()))
            raise ValueError(
                f"sites contains {item!r}, which is neither an admission_source_id code nor one "
                f"of the descriptions {known}"
            )
        out += [c for c in found if c not in out]
    return out


def load_diabetes_130(
    sites: int | str | Iterable[int | str] | None = None, drop_expired: bool = False
) -> Cohort:
    """Load Diabetes 130-US Hospitals: 101,766 inpatient encounters of diabetic patients.

    Encounters at 130 US hospitals, 1999-2008 (Health Facts database), with demographics,
    admission data, lab and procedure counts, three ICD-9 diagnoses, 23 medication-change flags
    and whether the patient was readmitted. The data hold no hospital identifier, so the
    admission source (emergency room, physician referral, transfer, ...) serves as a proxy site.

    The data are bundled with the package (UCI Machine Learning Repository, dataset 296,
    CC BY 4.0; cite Strack et al., BioMed Research International 2014). See
    ``docs/datasets.md``.

    Parameters
    ----------
    sites : int, str or iterable of int / str, optional
        Admission sources to keep, as ``admission_source_id`` codes (``7``) or descriptions
        (``"Emergency Room"``, case-insensitive); default all. See
        :func:`admission_source_names`.
    drop_expired : bool, default=False
        Remove encounters that ended in death (``discharge_disposition_id`` 11, 19, 20 or 21;
        1,652 encounters), as is usual for readmission studies. Hospice discharges (13, 14)
        are kept.

    Returns
    -------
    Cohort
        One row per encounter. The target ``readmitted_30d`` is 1 when the patient was
        readmitted within 30 days (``readmitted == "<30"``; the ``readmitted`` column is
        dropped). The id column is ``patient_nbr`` (71,518 patients; repeat encounters are
        kept, ``repeated_ids="allow"``, and split and privacy-accounted together);
        ``encounter_id`` and the ``admission_source_id`` code are kept with role ``ignore``.
        The group column ``site`` is the description of ``admission_source_id`` from
        ``IDs_mapping.csv`` (codes 9 and 15 share "Not Available"). ``?`` is missing, as is the
        gender "Unknown/Invalid"; ``"None"`` in ``max_glu_serum`` and ``A1Cresult`` means "not
        measured" and is a category. ``diag_1`` to ``diag_3`` are ICD-9 codes as strings with an
        open vocabulary, as is ``medical_specialty``; medication columns are categorical
        ``No`` / ``Steady`` / ``Up`` / ``Down``; age and weight bands are ordinal. Built with
        ``all_missing="keep"`` (``weight`` is missing in 97% of encounters).

    Raises
    ------
    ValueError
        An unknown site code or description.

    Examples
    --------
    >>> from graphxfer.datasets import load_diabetes_130
    >>> cohort = load_diabetes_130()
    >>> len(cohort), cohort.n_persons, int(cohort.y.sum())
    (101766, 71518, 11357)
    >>> er = load_diabetes_130(sites="Emergency Room", drop_expired=True)
    >>> er.groups.unique().tolist()
    ['Emergency Room']
    """
    tables = _id_tables()
    names = tables["admission_source_id"]
    codes = _site_codes(sites, names)
    schema = _schema(tables)
    text = {c.name: str for c in schema if c.kind != "numeric" and c.role == "feature"}
    text.update({"gender": str, "readmitted": str})
    for name in ("admission_type_id", "discharge_disposition_id"):
        del text[name]
    frame = read_bundled_csv(
        "diabetes_130",
        "diabetic_data.csv.gz",
        keep_default_na=False,
        na_values=["?"],
        dtype=text,
    )
    keep = frame["admission_source_id"].isin(codes)
    if drop_expired:
        keep = keep & ~frame["discharge_disposition_id"].isin(_EXPIRED)
    frame = frame.loc[keep].reset_index(drop=True)
    if len(frame) == 0:
        raise ValueError(f"no encounter has an admission source in {codes}")
    frame["site"] = frame["admission_source_id"].map(names)
    frame["gender"] = frame["gender"].mask(frame["gender"] == "Unknown/Invalid")
    frame["readmitted_30d"] = (frame.pop("readmitted") == "<30").astype(np.int64)
    for name in ("encounter_id", "patient_nbr", "admission_source_id"):
        frame[name] = frame[name].astype(str)
    labels = [
        c.name for c in schema if c.kind != "numeric" and c.role in ("feature", "group", "target")
    ]
    as_categories(frame, labels)
    return Cohort(
        frame[schema.names],
        schema,
        all_missing="keep",
        repeated_ids="allow",
        name="diabetes_130",
    )
