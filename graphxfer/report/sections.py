"""The built-in report sections: checks at a glance, cohort, model card, measurements on private
records (outside ε: metrics, audit, calibration, shift from the source), global importance and
selected records.

Each builder lives with its topic (:mod:`~graphxfer.report.card_sections`,
:mod:`~graphxfer.report.check_sections`, :mod:`~graphxfer.report.explanation_sections`); this
module registers them, and the order of the registrations below is the order of a report.
"""

from __future__ import annotations

from graphxfer.release import EVALUATION_TITLE
from graphxfer.report.card_sections import cohort_section, model_card_section
from graphxfer.report.check_sections import checks_section, evaluation_section
from graphxfer.report.explanation_sections import global_importance_section, records_section
from graphxfer.report.registry import register_section

__all__: list[str] = []

register_section("checks", title="Checks")(checks_section)
register_section("cohort", title="Cohort")(cohort_section)
register_section("model_card", title="Model card")(model_card_section)
register_section("evaluation", title=EVALUATION_TITLE)(evaluation_section)
register_section("global_importance", title="Global importance")(global_importance_section)
register_section("records", title="Selected records")(records_section)
