"""DREAM 2022 challenge test-suite loading, scoring and reporting."""

from src.evaluation.dream_suite import (
    PAIR_SUBSETS,
    SEQUENCE_FILE,
    SINGLE_SUBSETS,
    SUBSET_FILES,
    SUBSET_WEIGHTS,
    TestSuite,
    load_test_suite,
    pearson,
    rank_average,
    score_predictions,
    spearman,
    subset_values,
)
from src.evaluation.report import format_table, write_report

__all__ = [
    "PAIR_SUBSETS",
    "SEQUENCE_FILE",
    "SINGLE_SUBSETS",
    "SUBSET_FILES",
    "SUBSET_WEIGHTS",
    "TestSuite",
    "format_table",
    "load_test_suite",
    "pearson",
    "rank_average",
    "score_predictions",
    "spearman",
    "subset_values",
    "write_report",
]
