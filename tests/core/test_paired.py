"""The exact McNemar test: scipy's two-sided binomial test on the discordant samples, nothing else counts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from edgeport.core.paired import compare_paired
from edgeport.errors import ConfigError


@pytest.mark.parametrize(("a_only", "b_only"), [(2, 1), (12, 1), (0, 7), (30, 18), (400, 340), (0, 0)])
def test_p_is_the_exact_two_sided_binomial_test_on_the_discordant_samples(a_only, b_only):
    both_right, both_wrong = 200, 5  # the concordant samples say nothing about which model is better
    a = np.array([True] * a_only + [False] * b_only + [True] * both_right + [False] * both_wrong)
    b = np.array([False] * a_only + [True] * b_only + [True] * both_right + [False] * both_wrong)
    result = compare_paired(a, b)
    assert (result.a_only, result.b_only, result.samples) == (a_only, b_only, len(a))
    expected = binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    assert result.p_value == pytest.approx(expected, rel=1e-9)
    assert result.a_better == (a_only > b_only and expected < 0.05)
    assert result.b_better == (b_only > a_only and expected < 0.05)


def test_outcomes_of_different_samples_are_refused():
    with pytest.raises(ConfigError, match="the same samples: 3 outcomes against 4"):
        compare_paired(np.ones(3, bool), np.ones(4, bool))
