"""Shared pieces of the multi-label studies (MCC, CAMEL): the embedded data generator and the Mulan
fetchers (``data``), feature maps and the RBF kernel (``features``), the binary-relevance and ML-kNN
baselines (``learners``, ``mlknn``) and the table helpers of their figures (``figures``)."""

from repro.studies.multilabel import data, learners, mlknn  # noqa: F401  (register datasets and the BR / ML-kNN learners)
