"""The vision-language GPU check (``scripts/gpu_check_multimodal.py``) keeps running: its tiny shape
takes every registered CLIP and LLaVA method through fit and evaluate on the CPU (the device the
family picks here), so the script a GPU session runs cannot rot unnoticed."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_runs_every_method_on_the_tiny_shape(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check_multimodal.py"), "--shape", "tiny",
                           "--out", str(out), "--work", str(tmp_path / "work")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    stages = json.loads((out / "gpu_check_multimodal.json").read_text())["stages"]
    names = " ".join(s["stage"] for s in stages)
    for method in ("bdetclip", "strip", "scaleup", "teco", "no_defence", "rvpt", "linear_probe", "cleanclip",
                   "proxy_pgd", "lvlm_no_defence", "cleansight"):
        assert f"{method}: fit + evaluate on cpu" in names
    assert not [s for s in stages if str(s["result"]).startswith("FAILED")]
