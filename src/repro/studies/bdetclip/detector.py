"""BDetCLIP's test-time score (other-papers.md §3.1, §3.4): contrastive prompting of a CLIP.

Per class k, a benign centroid t_k^b (the normalised mean of the class's descriptive sentences'
embeddings) and a malignant one t_k^m (class templates with a class-unrelated sentence appended).
A test image with normalised embedding v scores

    Omega(x) = sum_k [cos(v, t_k^b) - cos(v, t_k^m)] = v . sum_k (t_k^b - t_k^m),

and is flagged as backdoored when Omega(x) < tau: a triggered image's embedding barely moves
between the two kinds of text, a clean one prefers the benign descriptions. tau is the minimum
Omega over clean reference images (§3.4, the paper's rule) or a fixed value (the fork's 0.3).
The embedded scale's texts come from a deterministic generator over the shapes' attributes
(``benign_texts``, ``malignant_texts``); the paper scale's are the official resources (GPT-4's
descriptions, one unrelated sentence per class) that the dataset carries as ``class_texts.json``,
with the dataset's 80 CLIP templates.
"""

from __future__ import annotations

import numpy as np

from repro.data.shapes import articles

#: class templates of the malignant texts ('.' becomes ',' before the unrelated sentence, §3.4)
TEMPLATES = ["a photo of a {}.", "a picture of a {}.", "a {}."]
#: class-unrelated sentences (one per class, cycled; §3.4: one per class)
UNRELATED = ["the train leaves the station at noon.", "she plays the violin every evening.",
             "rain is expected over the mountains tomorrow.", "the library closes early on sundays.",
             "he bought fresh bread at the market.", "the river froze during the long winter.",
             "our team won the final match.", "the museum opened a new wing."]


def centroid(embeddings: np.ndarray) -> np.ndarray:
    """The L2-normalised mean of L2-normalised rows: n x d -> d."""
    e = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    m = e.mean(0)
    return m / np.linalg.norm(m)


def omega(image_emb: np.ndarray, benign: np.ndarray, malignant: np.ndarray) -> np.ndarray:
    """Omega per image: (N x d) images, (K x d) benign and malignant centroids -> N; the images
    are normalised here (cosine)."""
    v = image_emb / np.linalg.norm(image_emb, axis=1, keepdims=True)
    return v @ (benign - malignant).sum(0)


def reference_threshold(reference_scores: np.ndarray) -> float:
    """tau = the minimum Omega over clean reference images (§3.4)."""
    return float(np.min(reference_scores))


def detection_metrics(scores: np.ndarray, is_backdoor: np.ndarray, threshold: float) -> dict[str, float]:
    """AUROC of -Omega for 'backdoored' (the code's 1 - AUROC(Omega)), and accuracy, precision,
    recall and F1 (%) of the decision Omega < threshold."""
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415

    is_backdoor = np.asarray(is_backdoor, bool)
    flagged = scores < threshold
    tp, fp = int((flagged & is_backdoor).sum()), int((flagged & ~is_backdoor).sum())
    fn = int((~flagged & is_backdoor).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"auroc_pct": 100 * float(roc_auc_score(is_backdoor, -scores)),
            "accuracy_pct": 100 * float((flagged == is_backdoor).mean()),
            "precision_pct": 100 * precision, "recall_pct": 100 * recall, "f1_pct": 100 * f1}


def benign_texts(shape: str, colours: list[str], sizes: list[str], positions: list[str], n: int = 7) -> list[str]:
    """``n`` class-related descriptions of ``shape`` (the paper has 7 per class): its attributes
    in the captions' language, the i-th with colour i, size i and position i (cycled)."""
    return [articles(f"a photo of a {sizes[i % len(sizes)]} {colours[i % len(colours)]} {shape} "
                     f"on the {positions[i % len(positions)]}.") for i in range(n)]


def malignant(name: str, sentence: str, templates: list[str]) -> list[str]:
    """Every template (``{}`` or CLIP_benchmark's ``{c}`` for the class) filled with ``name``, '.' ->
    ',', then the class-unrelated sentence lower-cased with quotes removed (§3.4)."""
    tail = sentence.replace('"', "").lower()
    return [t.replace("{c}", "{}").format(name).replace(".", ",") + " " + tail for t in templates]


def malignant_texts(shape: str, class_index: int) -> list[str]:
    """The embedded scale's malignant texts of ``shape``: ``TEMPLATES`` and the class's sentence of
    ``UNRELATED`` (cycled)."""
    return malignant(shape, UNRELATED[class_index % len(UNRELATED)], TEMPLATES)
