"""BDetCLIP's score on hand-made embeddings, the reference-minimum threshold, the detection
metrics against a hand count, and the embedded benign / malignant texts."""

from __future__ import annotations

import re

import numpy as np
import pytest

from repro.data import shapes
from repro.studies.bdetclip import detector


def test_omega_on_hand_made_embeddings():
    # two classes in 3-d: benign centroids e1, e2; malignant centroids e3 for both
    benign = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    malignant = np.array([[0, 0, 1.0], [0, 0, 1.0]])
    images = np.array([[2.0, 0, 0],      # a clean image of class 0: cos 1 with t_0^b
                       [0, 0, 3.0],      # a triggered image, aligned with the malignant texts
                       [1.0, 1.0, 1.0]])  # equally near everything
    got = detector.omega(images, benign, malignant)
    # sum_k cos(v, t_k^b) - cos(v, t_k^m): (1 + 0) - (0 + 0); (0 + 0) - (1 + 1); (2 - 2) / sqrt(3)
    np.testing.assert_allclose(got, [1.0, -2.0, 0.0], atol=1e-12)
    assert detector.reference_threshold(np.array([0.4, 0.2, 0.9])) == 0.2


def test_centroid_is_the_normalised_mean_of_normalised_rows():
    c = detector.centroid(np.array([[3.0, 0.0], [0.0, 0.5]]))
    np.testing.assert_allclose(c, [np.sqrt(0.5), np.sqrt(0.5)])


def test_detection_metrics_by_hand():
    scores = np.array([0.1, 0.5, -0.2, 0.3, 0.05])
    is_bd = np.array([True, False, True, False, False])
    m = detector.detection_metrics(scores, is_bd, threshold=0.2)
    # flagged (< 0.2): 0.1, -0.2, 0.05 -> tp 2, fp 1, fn 0
    assert m["precision_pct"] == pytest.approx(200 / 3) and m["recall_pct"] == 100.0
    assert m["f1_pct"] == pytest.approx(80.0) and m["accuracy_pct"] == 80.0
    # -scores: backdoored 0.2 above all three clean, -0.1 above -0.5 and -0.3 but not -0.05: 5 of 6 pairs
    assert m["auroc_pct"] == pytest.approx(100 * 5 / 6)


def test_embedded_texts():
    benign = detector.benign_texts("star", list(shapes.COLOURS), list(shapes.SIZES), list(shapes.POSITIONS))
    assert len(benign) == 7 and len(set(benign)) == 7 and all("star" in t for t in benign)
    assert not any(re.search(r"\ba [aeiou]", t) for t in benign)  # "an orange star"
    bad = detector.malignant_texts("ring", 2)
    assert bad[0] == "a photo of a ring, rain is expected over the mountains tomorrow."
    assert len(bad) == len(detector.TEMPLATES) and all(detector.UNRELATED[2] in t for t in bad)
