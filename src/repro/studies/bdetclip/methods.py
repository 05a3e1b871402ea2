"""BDetCLIP and its baseline detectors as methods of the ``multimodal`` family (other-papers.md §3).

Every detector has a native statistic (BDetCLIP: Omega; STRIP: blend entropy; SCALE-UP: scaled
prediction consistency; TeCo: the spread of corruption flip points) and a direction in which it
is suspicious; its anomaly score is the statistic signed so that higher = more suspicious.

- ``fit``: the detector's own preparation (BDetCLIP: the benign and malignant text centroids) and
  its statistic on the clean reference split, from which the threshold comes: by default the
  paper's rule (§3.4: flagged when more suspicious than every clean reference image, i.e.
  Omega < min over the references), a reference quantile, or a fixed value of the native
  statistic (the fork's ``--threshold 0.3`` on Omega, §3.1).
- ``evaluate``: per split, a share ``backdoor_ratio`` of the images, drawn (seeded) from the
  non-target classes, carries the model's trigger (§3.2: 0.3); AUROC and AUPRC of the anomaly
  score, accuracy, precision, recall and F1 of the thresholded decision, the detector's
  seconds per image, and the ROC curve (for the figure).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np

from repro import io as rio
from repro.multimodal.family import Clip, EvalConfig, Fitted, TrainConfig
from repro.studies.bdetclip import baselines, detector


@dataclass(frozen=True)
class ThresholdParams:
    # reference_max: flagged when more suspicious than every clean reference image (§3.4);
    # reference_quantile: than the `value` quantile of them; fixed: native statistic beyond `value`
    threshold: Literal["reference_max", "reference_quantile", "fixed"] = "reference_max"
    value: float = 0.95

    def __post_init__(self) -> None:
        if self.threshold == "reference_quantile" and not 0.0 < self.value < 1.0:
            raise ValueError(f"value {self.value}: a reference quantile must be in (0, 1)")


@dataclass(frozen=True)
class BDetCLIPParams(ThresholdParams):
    descriptions: int = 7  # benign descriptions per class (the official resource: 7, §3.4)


@dataclass(frozen=True)
class STRIPParams(ThresholdParams):
    blends: int = 10  # clean images superimposed per input (STRIP's N) [I]
    weight_input: float = 1.0
    weight_clean: float = 1.0


@dataclass(frozen=True)
class ScaleUpParams(ThresholdParams):
    factors: list[float] = field(default_factory=lambda: [3.0, 5.0, 7.0, 9.0, 11.0])  # SCALE-UP's [I]


@dataclass(frozen=True)
class TeCoParams(ThresholdParams):
    corruptions: list[str] = field(default_factory=lambda: list(baselines.CORRUPTIONS))


def probabilities(clip: Clip) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 images -> zero-shot class probabilities (softmax of CLIP's scaled cosines), N x K."""
    import torch  # noqa: PLC0415

    from repro.multimodal.clip import encode_images  # noqa: PLC0415

    scale = float(clip.model.logit_scale.exp())

    def predict(images: np.ndarray) -> np.ndarray:
        logits = scale * encode_images(clip.model, images) @ clip.class_embeddings.T
        return torch.softmax(logits, -1).numpy()
    return predict


class Detector:
    """A thresholded test-time detector; subclasses give ``statistic`` and ``suspicious_low``."""

    Params: type = ThresholdParams
    suspicious_low: bool = False  # True: a low native statistic is suspicious (Omega, STRIP entropy)

    def prepare(self, clip: Clip, params: Any) -> dict[str, Any]:
        """Tensors the statistic needs, computed once (saved with the fit)."""
        return {}

    def statistic(self, clip: Clip, prepared: dict[str, Any], params: Any, images: np.ndarray,
                  seed: int) -> np.ndarray:
        raise NotImplementedError

    def anomaly(self, native: np.ndarray) -> np.ndarray:
        return -native if self.suspicious_low else native

    def fit(self, clip: Clip, params: Any, cfg: TrainConfig, seed: int, log_row) -> Fitted:
        import torch  # noqa: PLC0415

        prepared = self.prepare(clip, params)
        reference, _, _ = clip.split("reference")
        anomaly = self.anomaly(self.statistic(clip, prepared, params, reference, seed))
        if params.threshold == "reference_max":
            threshold = float(anomaly.max())
        elif params.threshold == "reference_quantile":
            threshold = float(np.quantile(anomaly, params.value))
        else:
            threshold = float(self.anomaly(np.array([params.value]))[0])
        return Fitted({**prepared, "reference_anomaly": torch.from_numpy(anomaly.astype(np.float32))},
                      {"threshold_anomaly": threshold, "reference_images": int(len(reference))})

    def evaluate(self, clip: Clip, fitted: Fitted, params: Any, cfg: EvalConfig, seed: int) -> dict[str, Any]:
        from sklearn.metrics import average_precision_score, roc_curve  # noqa: PLC0415

        out = {}
        for split in cfg.splits:
            images, labels, _ = clip.split(split, cfg.max_examples)
            images, is_bd = backdoor_mix(clip, images, labels, cfg.backdoor_ratio, seed)
            t0 = time.perf_counter()
            anomaly = self.anomaly(self.statistic(clip, fitted.tensors, params, images, seed))
            seconds = time.perf_counter() - t0
            # detection_metrics flags score < threshold: pass the negated anomaly
            metrics = detector.detection_metrics(-anomaly, is_bd, -fitted.info["threshold_anomaly"])
            metrics["auprc_pct"] = 100 * float(average_precision_score(is_bd, anomaly))
            metrics["ms_per_image"] = 1000 * seconds / len(images)
            fpr, tpr, _ = roc_curve(is_bd, anomaly)
            keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 200)).round().astype(int))
            out[split] = {"metrics": metrics, "n": int(len(images)), "n_backdoor": int(is_bd.sum()),
                          "roc": {"fpr": fpr[keep].round(5).tolist(), "tpr": tpr[keep].round(5).tolist()}}
        return out


def backdoor_mix(clip: Clip, images: np.ndarray, labels: np.ndarray, ratio: float, seed: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(images with the trigger on ``round(ratio * N)`` of them, drawn from the non-target classes,
    is_backdoor bool N)."""
    rng = np.random.default_rng([seed, 2027])
    clip.require_backdoor()
    # a target outside this dataset's classes (BDetCLIP's ImageNet 'banana' model on Food-101):
    # every image is a non-target image
    target = clip.target if clip.backdoor["target"] in clip.classes else -1
    candidates = np.flatnonzero(labels != target)
    n = min(round(ratio * len(images)), len(candidates))
    chosen = rng.choice(candidates, size=n, replace=False)
    images = images.copy()
    images[chosen] = clip.trigger(images[chosen])
    is_bd = np.zeros(len(images), bool)
    is_bd[chosen] = True
    return images, is_bd


class BDetCLIP(Detector):
    """Omega(x) = v . sum_k (t_k^b - t_k^m) (§3.1); low = backdoored."""

    Params = BDetCLIPParams
    suspicious_low = True

    def prepare(self, clip: Clip, params: BDetCLIPParams) -> dict[str, Any]:
        import torch  # noqa: PLC0415

        from repro.multimodal.clip import encode_texts  # noqa: PLC0415

        def centroids(texts_of: Callable[[int, str], list[str]]) -> torch.Tensor:
            return torch.from_numpy(np.stack([
                detector.centroid(encode_texts(clip.model, clip.tokenizer, texts_of(k, c)).numpy())
                for k, c in enumerate(clip.classes)]))
        resources = clip.dataset_dir / "class_texts.json"
        if resources.exists():  # the paper scale: the official descriptions and sentences (§3.4)
            texts, templates = rio.read_json(resources), clip.data_manifest["templates"]
            if not templates:
                raise ValueError(f"bdetclip: {clip.dataset_dir} has class texts but no CLIP templates (MANIFEST "
                                 f"templates), from which the malignant texts are built")
            benign = centroids(lambda k, c: texts["benign"][c][: params.descriptions])
            malignant = centroids(lambda k, c: detector.malignant(c, texts["unrelated"][c], templates))
        else:  # the embedded scale: generated from the shapes' attributes
            attrs = clip.data_manifest["attributes"]
            benign = centroids(lambda k, c: detector.benign_texts(c, attrs["colour"], attrs["size"],
                                                                  attrs["position"], params.descriptions))
            malignant = centroids(lambda k, c: detector.malignant_texts(c, k))
        return {"benign": benign, "malignant": malignant}

    def statistic(self, clip, prepared, params, images, seed):
        from repro.multimodal.clip import encode_images  # noqa: PLC0415

        return detector.omega(encode_images(clip.model, images).numpy(), prepared["benign"].numpy(),
                              prepared["malignant"].numpy())


class STRIP(Detector):
    """Mean prediction entropy over blends with clean images; low = backdoored."""

    Params = STRIPParams
    suspicious_low = True

    def statistic(self, clip, prepared, params, images, seed):
        pool, _, _ = clip.split("fewshot")  # [I] the defender's small clean set
        return -baselines.strip_score(images, pool, probabilities(clip), n=params.blends,
                                      weights=(params.weight_input, params.weight_clean), seed=seed)


class ScaleUp(Detector):
    """Scaled prediction consistency; high = backdoored."""

    Params = ScaleUpParams

    def statistic(self, clip, prepared, params, images, seed):
        return baselines.scaleup_score(images, probabilities(clip), factors=tuple(params.factors))


class TeCo(Detector):
    """Std of the corruption flip points; high = backdoored."""

    Params = TeCoParams

    def statistic(self, clip, prepared, params, images, seed):
        return baselines.teco_score(images, probabilities(clip), kinds=tuple(params.corruptions), seed=seed)


bdetclip, strip, scaleup, teco = BDetCLIP(), STRIP(), ScaleUp(), TeCo()
