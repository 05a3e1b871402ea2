"""The real Snakemake workflow for the four vision-language studies together (BDetCLIP, RVPT, PTA on
the CLIP; CleanSight on the LLaVA built from its image tower) on their real embedded config, shrunk: a smaller generated set, a smaller CLIP, fewer epochs and PGD steps,
two methods per study (every method's fit and evaluation is tested in tests/multimodal). The shared
dataset and models are one DAG node each, whichever studies declare them; every study's figures
come out; and the paper-scale dry run of the three parses."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))
from smokerun import snakemake  # noqa: E402  (tests/workflow/smokerun.py, the shared runner)

pytestmark = pytest.mark.workflow
STUDIES = ("bdetclip", "rvpt", "pta", "cleansight")
SMALL = {"embed_dim": 32, "vision_cfg": {"width": 32, "layers": 2, "head_width": 16},
         "text_cfg": {"width": 32, "heads": 2, "layers": 1}}
METHODS = {"bdetclip": ["bdetclip", "strip"], "rvpt": ["no_defence", "rvpt"], "pta": ["illusion", "pta"],
           "cleansight": ["no_defence", "cleansight"]}
LLAVA_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 2,
              "num_key_value_heads": 2}


def shrink(root: Path, wd: Path) -> dict[str, dict]:
    shutil.copytree(root / "config", wd / "config")
    shutil.copytree(root / "paper_figures" / "reported", wd / "paper_figures" / "reported")
    out = {}
    for study in STUDIES:
        path = wd / "config" / "studies" / f"{study}.yaml"
        data = yaml.safe_load(path.read_text())
        data["datasets"]["shapes/embedded"] = {"seed": 0, "per_seed": "seed", "train": 256, "shots": 2,
                                               "reference": 24, "test": 48}
        models = data["models"]
        models["tiny-clip-clean"]["params"].update(model=SMALL, epochs=2, batch_size=64)
        for name in ("tiny-clip-badnets", "tiny-clip-blended"):
            if name in models:
                models[name]["params"].update(epochs=1, batch_size=64)
        if "tiny-llava-badnets" in models:
            models["tiny-llava-badnets"]["params"].update(epochs=1, batch_size=32, model={"text": LLAVA_TEXT})
        for m in data["methods"].values():
            tr = m.get("train", {}).get("embedded")
            if tr:
                tr.update(epochs=1, **({"max_examples": 64} if tr.get("data_split") == "train" else {}))
            if m["impl"] == "proxy_pgd":
                m["params"].update(steps=3, n_images=6, gallery=10, k=3, n_source=4)
            if m["impl"] == "rvpt":
                m["params"].update(length=4)
            if m["impl"] == "cleansight":
                m["params"].update(calibration=16)
        if study == "rvpt":
            data["scales"]["embedded"]["models"] = ["tiny-clip-blended"]
        path.write_text(yaml.safe_dump(data))
        out[study] = data
    cfg = yaml.safe_load((wd / "config" / "config.yaml").read_text())
    cfg["seeds"] = {s: [0] for s in STUDIES}
    cfg["seeds"]["bdetclip"] = [0, 1]  # two seeds: the claims have a paired test
    cfg["methods"] = {**(cfg.get("methods") or {}), **METHODS}
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    return out


def test_clip_studies_embedded_workflow(root, tmp_path):
    data = shrink(root, tmp_path)
    proc = snakemake(root, tmp_path, "--cores", "2", "--config", f"studies=[{','.join(STUDIES)}]")
    # one get_model job per model and seed (each seed draws its data and builds its models: per_seed),
    # whichever of the studies declare it; BDetCLIP's seed 1 needs seed-1 CLIPs, CleanSight's none
    built = {m.name for m in (tmp_path / "resources" / "models").iterdir()}
    assert built == {f"tiny-clip-{m}.seed{k}" for m in ("clean", "badnets", "blended") for k in (0, 1)} | {
        "tiny-llava-badnets.seed0"}
    for model in built:
        assert proc.stdout.count(f"--out resources/models/{model}\n") + proc.stderr.count(
            f"--out resources/models/{model}\n") <= 1
        assert (tmp_path / "resources" / "models" / model / "model.safetensors").exists()
    llava = json.loads((tmp_path / "resources/models/tiny-llava-badnets.seed0/MANIFEST.json").read_text())
    clean = tmp_path / "resources/models/tiny-clip-clean.seed0/MANIFEST.json"
    assert llava["vision_tower"]["manifest_sha256"] == hashlib.sha256(clean.read_bytes()).hexdigest()
    seed1 = json.loads((tmp_path / "resources/models/tiny-clip-badnets.seed1/MANIFEST.json").read_text())
    assert seed1["params"]["seed"] == 1 and seed1["base_model"]["name"] == "tiny-clip-clean.seed1"
    for k in (0, 1):  # a run reads its own seed's data and model, and its provenance says which
        prov = json.loads((tmp_path / f"results/embedded/bdetclip/shapes/tiny-clip-badnets/bdetclip/seed{k}/"
                           "eval.json").read_text())["provenance"]
        assert (prov["dataset"]["name"], prov["model"]["name"]) == (f"shapes/embedded.seed{k}",
                                                                   f"tiny-clip-badnets.seed{k}")
    for study, spec in data.items():
        s = pd.read_csv(tmp_path / f"results/embedded/{study}/summary.csv")
        assert set(s.method) == set(METHODS[study]) and (s.n_seeds == (2 if study == "bdetclip" else 1)).all()
        assert set(s.model) == set(spec["scales"]["embedded"]["models"])
        for fig in spec["figures"]:
            for ext in ("csv", "md", "png"):
                assert (tmp_path / f"paper_figures/embedded/{study}/{fig}.{ext}").stat().st_size > 0
    e = json.loads((tmp_path / "results/embedded/rvpt/shapes/tiny-clip-blended/rvpt/seed0/eval.json").read_text())
    assert e["config"]["params"]["alpha"] == 2.0 and e["provenance"]["model"]["manifest_sha256"]
    md = (tmp_path / "paper_figures/embedded/bdetclip/main_table.md").read_text()
    assert "claim: BDetCLIP's AUROC beats strip's (shapes, tiny-clip-badnets): " in md and "n = 2 paired" in md
    table = pd.read_csv(tmp_path / "paper_figures/embedded/rvpt/main_table.csv")
    assert {"reproduced", "reported"} == set(table.source) and "imagenet" in set(table.benchmark)


def test_clip_studies_paper_dag_on_the_slurm_profile(root, tmp_path):
    """The paper scale of the CLIP studies: the WebDataset image data, OpenAI's ViT-B/32 and RN50 from
    the Hub and eleven backdoored fine-tunes of them (one GPU and 12 h each, from the model entries),
    BDetCLIP on ImageNet-1K, Food-101 and Caltech-101 with both backbones (the last two with class
    texts an LLM writes on a GPU), RVPT on ImageNet-1K, Caltech101 and OxfordPets with each
    benchmark's own target (BadNet, blended and WaNet models), PTA on the clean ViT-B/32, CleanSight
    on LLaVA-1.5-7B with the attacker's BadNet, blended and WaNet poisoned LoRAs on VQAv2."""
    shutil.copytree(root / "config", tmp_path / "config")
    shutil.copytree(root / "workflow" / "profiles", tmp_path / "workflow" / "profiles")
    shutil.copytree(root / "paper_figures" / "reported", tmp_path / "paper_figures" / "reported")
    proc = snakemake(root, tmp_path, "-n", "--config", f"studies=[{','.join(STUDIES)}]", "--configfile",
                     str(tmp_path / "config" / "paper.yaml"), "--profile", "workflow/profiles/slurm")
    assert proc.returncode == 0, proc.stderr[-3000:]
    blocks = proc.stdout.split("\nrule ")
    fetched = {b.split("output: resources/datasets/")[1].split()[0]: b for b in blocks if b.startswith("fetch_dataset:")}
    assert set(fetched) == {"images/cc3m", "images/imagenet1k", "images/caltech101", "images/oxford_pets",
                            "images/food101", "vqa/vqav2"}
    # the sets without official BDetCLIP texts get theirs from the LLM, on a GPU, after its download
    for described in ("images/food101", "images/caltech101"):
        assert "--generator-dir resources/models/qwen2.5-7b-instruct" in fetched[described]
        assert "gpu=1," in fetched[described] and '"class_texts": {"generate"' in fetched[described]
    assert "gpu=0," in fetched["images/imagenet1k"] and "runtime=120," in fetched["images/imagenet1k"]
    models = {b.split("output: resources/models/")[1].split()[0]: b for b in blocks if b.startswith("get_model:")}
    assert all("--builder hf_hub" in models.pop(m) for m in ("clip-vit-b32-openai", "clip-rn50-openai", "llava-1.5-7b",
                                                            "qwen2.5-7b-instruct"))
    assert all("--builder llava_lora" in models.pop(f"llava-1.5-7b-{t}") for t in ("badnets", "blended", "wanet"))
    assert len(models) == 11 and all("--builder clip" in b and "gpu=1," in b and "runtime=720," in b
                                    for b in models.values())
    trains = [b for b in blocks if b.startswith("train:")]
    assert all("gpu=1," in b for b in trains)
    by_study = {s: {(b.split("benchmark=")[1].split(",")[0], b.split("model=")[1].split(",")[0])
                    for b in trains if f"study={s}," in b} for s in ("bdetclip", "rvpt", "pta", "cleansight")}
    assert by_study["bdetclip"] == {(bench, f"clip-{arch}-{trigger}-banana") for bench in ("imagenet1k", "food101", "caltech101")
                                    for arch in ("vit-b32", "rn50") for trigger in ("badnets", "blended")}
    assert '"epochs": 10' in models["clip-rn50-badnets-banana"]  # the fork's recipe (RVPT's ViTs: 5)
    assert {m.split("-")[-1] for b, m in by_study["rvpt"] if b == "caltech101"} == {"accordion"}
    assert {m.split("-")[-1] for b, m in by_study["rvpt"] if b == "oxford_pets"} == {"samoyed"}
    assert len(by_study["rvpt"]) == 9 and '"kind": "wanet", "k": 224' in models["clip-vit-b32-wanet-samoyed"]
    assert by_study["pta"] == {("imagenet1k", "clip-vit-b32-openai")}  # the attacks target the clean CLIP
    assert by_study["cleansight"] == {("vqav2", f"llava-1.5-7b-{t}") for t in ("badnets", "blended", "wanet")}
    assert "--params" in proc.stdout and '"image_token_start": 35' in proc.stdout  # the code's layout
