"""scikit-learn's own estimator checks, for featx's estimators that can pass them.

Embedder and TokenEmbedder take texts (their tags say so), LinearChainCRF takes
sequences: scikit-learn then runs the checks that apply to such input (cloning, params).
NeuralHead is left out on purpose: its weights come from fine-tuning and ``fit`` refuses.
"""

from __future__ import annotations

import warnings

from sklearn.exceptions import SkipTestWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from featx import Embedder, HashEncoder
from featx.tagging import TokenEmbedder
from featx.tagging.crf import LinearChainCRF

with warnings.catch_warnings():
    # Text and sequence input: scikit-learn says which checks it skips, and runs the rest.
    warnings.simplefilter("ignore", SkipTestWarning)
    checks = parametrize_with_checks(
        [Embedder(HashEncoder(dim=8)), TokenEmbedder(HashEncoder(dim=8)), LinearChainCRF()]
    )


@checks
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
