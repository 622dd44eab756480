"""Pure statistics for experiments: sufficient statistics in, results out; no I/O.

    >>> from stats import ProportionStatistic, fixed_horizon
    >>> r = fixed_horizon(ProportionStatistic(10_000, 500), ProportionStatistic(10_000, 560))
    >>> round(r.effect, 6), round(r.p_value, 7)
    (0.006, 0.0582497)

Every formula cites its source in the module that implements it. Data problems (too
few units, no variance, a zero control mean) come back as values, never as exceptions.
"""

from stats.bayesian import (
    BetaBinomialResult,
    BetaPrior,
    EffectResult,
    GaussianPrior,
    beta_binomial,
    gaussian_effect,
)
from stats.corrections import benjamini_hochberg, holm
from stats.estimate import DataProblem, Estimate, Problem, estimate
from stats.frequentist import fixed_horizon
from stats.power import (
    PowerInputs,
    minimum_detectable_effect,
    power,
    sample_size,
    sequential_minimum_detectable_effect,
    sequential_power,
    sequential_sample_size,
)
from stats.quantile import QuantileSample, quantile_rank, quantile_statistic
from stats.results import AnalysisResult
from stats.sequential import SequentialDesign, accumulate_looks, sequential
from stats.srm import SrmResult, sample_ratio_mismatch
from stats.sufficient import (
    ProportionStatistic,
    QuantileStatistic,
    RatioStatistic,
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
    pooled_theta,
)

__all__ = [
    "AnalysisResult",
    "BetaBinomialResult",
    "BetaPrior",
    "DataProblem",
    "EffectResult",
    "Estimate",
    "GaussianPrior",
    "PowerInputs",
    "Problem",
    "ProportionStatistic",
    "QuantileSample",
    "QuantileStatistic",
    "RatioStatistic",
    "RegressionAdjustedStatistic",
    "SampleMeanStatistic",
    "SequentialDesign",
    "SrmResult",
    "accumulate_looks",
    "benjamini_hochberg",
    "beta_binomial",
    "estimate",
    "fixed_horizon",
    "gaussian_effect",
    "holm",
    "minimum_detectable_effect",
    "pooled_theta",
    "power",
    "quantile_rank",
    "quantile_statistic",
    "sample_ratio_mismatch",
    "sample_size",
    "sequential",
    "sequential_minimum_detectable_effect",
    "sequential_power",
    "sequential_sample_size",
]
