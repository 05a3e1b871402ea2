"""Shared pieces of the multi-label studies (MCC, CAMEL): the embedded data generator and the Mulan
fetchers (``data``), feature maps and the RBF kernel (``features``), the binary-relevance baseline
(``learners``) and the table helpers of their figures (``figures``)."""

from repro.studies.multilabel import data, learners  # noqa: F401  (register datasets and the BR learner)
