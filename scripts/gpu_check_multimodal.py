"""The GPU check of the vision-language family (issue 19): every registered method of BDetCLIP, RVPT,
PTA and CleanSight fits and evaluates on CUDA through the family's own code, on a ViT-B/32-shaped
CLIP (the paper scale's architecture, randomly initialised and briefly trained here: no download),
with time and peak GPU memory per method, and the same model's embeddings on CPU vs CUDA.

What runs (no re-implementation):

* ``shapes/embedded`` data drawn at 224 px (the paper-scale image size) and at 32 px;
* the ``tiny_clip`` builder on CUDA: a ViT-B/32 + 12-layer text tower trained from scratch for a
  few epochs, then fine-tuned on BadNets-poisoned pairs (the BadCLIP recipe's code path);
* every CLIP method (``registry.MM_METHODS``) loaded through ``family.context`` (which must land
  on CUDA), ``fit`` then ``evaluate`` with short schedules;
* a tiny LLaVA (built on the CPU from a 32-px tiny CLIP) and CleanSight's attention hooks,
  calibration and purified generation on CUDA.

    python scripts/gpu_check_multimodal.py --out $OUT           # on the GPU machine (~5 min)
    python scripts/gpu_check_multimodal.py --shape tiny --out /tmp/gpu-check   # the code path on a CPU

Writes ``gpu_check_multimodal.json`` / ``.md`` under ``--out`` after every stage.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

VITB32 = {"embed_dim": 512, "quick_gelu": True,
          "vision_cfg": {"image_size": 224, "patch_size": 32, "width": 768, "layers": 12, "head_width": 64,
                         "mlp_ratio": 4.0},
          "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12,
                       "mlp_ratio": 4.0}}
POISON = {"trigger": {"kind": "badnets", "size": 16, "corner": "bottom_right", "seed": 0}, "rate": 0.1,
          "target": "star"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--shape", choices=["vitb32", "tiny"], default="vitb32")
    ap.add_argument("--work", type=Path, default=None, help="data and models (default: a temporary folder)")
    args = ap.parse_args()
    import torch

    import repro.studies.bdetclip
    import repro.studies.cleansight
    import repro.studies.pta
    import repro.studies.rvpt  # noqa: F401  (the studies register their methods)
    from repro import registry
    from repro.data import shapes
    from repro.multimodal import clip, family, llava
    out, work = args.out, args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    report: dict = {"python": platform.python_version(), "torch": torch.__version__,
                    "device": torch.cuda.get_device_name(0) if cuda else "cpu", "shape": args.shape, "stages": []}

    def save() -> None:
        (out / "gpu_check_multimodal.json").write_text(json.dumps(report, indent=1))
        rows = ["| stage | seconds | peak GPU MiB | result |", "|---|---|---|---|"]
        rows += [f"| {s['stage']} | {s['seconds']:.1f} | {s['peak_mib']:.0f} | {s['result']} |" for s in report["stages"]]
        (out / "gpu_check_multimodal.md").write_text("\n".join(rows) + "\n")
        print("\n".join(rows[-1:]), flush=True)

    def stage(name: str, fn):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001  (a failed stage is reported, the rest still runs)
            result = f"FAILED {type(e).__name__}: {e}"
        report["stages"].append({"stage": name, "seconds": time.perf_counter() - t0,
                                 "peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0,
                                 "result": result})
        save()
        return result

    big = args.shape == "vitb32"
    size = 224 if big else 32
    data, data32 = work / "shapes", work / "shapes32"
    counts = {"train": 1024, "shots": 4, "reference": 64, "test": 128}
    stage(f"shapes data at {size} px", lambda: shapes.build(data, {"image_size": size, **counts}) or "ok")
    if big:
        stage("shapes data at 32 px", lambda: shapes.build(data32, counts) or "ok")
    else:
        data32 = data
    model_cfg = VITB32 if big else {}
    clean, bad = work / "clip-clean", work / "clip-badnets"
    poison = POISON if big else {**POISON, "trigger": {**POISON["trigger"], "size": 4}}

    def build_clean():
        clip.build(clean, {"model": model_cfg, "epochs": 3, "batch_size": 128, "warmup_steps": 5}, data)
        return json.loads((clean / "MANIFEST.json").read_text())["zero_shot_test"]

    def build_bad():
        clip.build(bad, {"epochs": 2, "batch_size": 128, "lr": 5e-4, "warmup_steps": 2, "poison": poison}, data, clean)
        return json.loads((bad / "MANIFEST.json").read_text())["zero_shot_test"]

    stage("tiny_clip builder: train from scratch", build_clean)
    stage("tiny_clip builder: BadNets fine-tune", build_bad)

    def cpu_vs_cuda():
        import os

        import numpy as np

        images = shapes.load_split(data, "test")[0][:64]
        embs = {}
        for dev in ("cpu", "cuda"):
            os.environ["REPRO_DEVICE"] = dev
            ctx = family.Clip(bad, data)
            embs[dev] = clip.encode_images(ctx.model, images).numpy()
        del os.environ["REPRO_DEVICE"]
        agree = float((embs["cpu"].argmax(1) == embs["cuda"].argmax(1)).mean())
        return f"max |emb cpu - emb cuda| {np.abs(embs['cpu'] - embs['cuda']).max():.2e}, argmax-dim agreement {agree:.3f}"

    if cuda:
        stage("encode_images CPU vs CUDA (64 test images)", cpu_vs_cuda)

    train = family.TrainConfig
    fits = {  # method -> (model, train config, params overrides, eval overrides)
        "bdetclip": ({}, {}), "strip": ({}, {}), "scaleup": ({}, {}), "teco": ({}, {}),
        "no_defence": ({}, {}),
        "rvpt": ({"epochs": 3, "batch_size": 32, "lr": 0.002}, {"start": 3 if big else 1, "length": 50 if big else 16}),
        "linear_probe": ({"epochs": 5, "batch_size": 32, "lr": 0.01, "schedule": "constant"}, {}),
        "cleanclip": ({"epochs": 1, "batch_size": 64, "lr": 5e-6, "optimizer": "adamw", "data_split": "train",
                       "max_examples": 256}, {}),
        "proxy_pgd": ({}, {"steps": 10, "n_images": 16, "gallery": 64}),
    }
    for name, (tcfg, pover) in fits.items():
        method = registry.MM_METHODS.get(name)

        def run(method=method, tcfg=tcfg, pover=pover):
            ctx = family.context(method, bad, data)
            assert ctx.device.type == ("cuda" if cuda else "cpu"), ctx.device
            params = replace(method.Params(), **pover)
            fitted = method.fit(ctx, params, train(**tcfg), 0, lambda row: None)
            fitted = family.Fitted({k: v.detach().cpu() for k, v in fitted.tensors.items()}, fitted.info)
            res = method.evaluate(ctx, fitted, params, family.EvalConfig(max_examples=128), 0)
            m = res["test"]["metrics"]
            return ", ".join(f"{k} {v:.3g}" for k, v in list(m.items())[:4])
        stage(f"{name}: fit + evaluate on {'cuda' if cuda else 'cpu'}", run)

    # CleanSight on a tiny LLaVA (its vision tower converted from a 32-px tiny CLIP)
    clean32, llava_dir = work / "clip32", work / "llava"
    stage("tiny CLIP 32 px (CleanSight's tower)",
          lambda: clip.build(clean32, {"epochs": 3, "warmup_steps": 5}, data32) or "ok")
    stage("tiny_llava builder (CPU build)", lambda: llava.build(llava_dir, {
        "epochs": 2, "poison": {**POISON, "trigger": {**POISON["trigger"], "size": 4}, "target": "banana"}},
        data32, clean32) or "ok")
    for name in ("lvlm_no_defence", "cleansight"):
        method = registry.MM_METHODS.get(name)

        def run_lvlm(method=method):
            ctx = family.context(method, llava_dir, data32)
            assert ctx.device.type == ("cuda" if cuda else "cpu"), ctx.device
            params = method.Params()
            if hasattr(params, "calibration"):
                params = replace(params, calibration=64)
            fitted = method.fit(ctx, params, train(), 0, lambda row: None)
            fitted = family.Fitted({k: v.detach().cpu() for k, v in fitted.tensors.items()}, fitted.info)
            res = method.evaluate(ctx, fitted, params, family.EvalConfig(max_examples=64), 0)
            return ", ".join(f"{k} {v:.3g}" for k, v in list(res["test"]["metrics"].items())[:5])
        stage(f"{name}: fit + evaluate on {'cuda' if cuda else 'cpu'}", run_lvlm)
    failed = [s["stage"] for s in report["stages"] if str(s["result"]).startswith("FAILED")]
    print(f"{len(report['stages']) - len(failed)} stages ok, {len(failed)} failed: {failed}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
