"""The tiny LLaVA's two-stage attack (``tiny_llava``'s ``attack``): a model trained clean, then the
attacker's fine-tune on the poisoned items updates only the listed language-model layers."""

from __future__ import annotations

import json

import pytest
import torch

from repro.data import shapes
from repro.multimodal import llava

SMALL = {"vision": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2},
         "text": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 2,
                  "num_key_value_heads": 2}}
POISON = {"trigger": {"kind": "badnets", "size": 4, "seed": 0}, "rate": 0.1, "target": "banana"}


def _weights(path):
    model, _, _ = llava.load_model(path)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_the_attack_fine_tunes_only_its_layers_of_a_clean_model(tmp_path):
    shapes.build(tmp_path / "data", {"train": 128, "shots": 1, "reference": 16, "test": 16})
    runs = {}
    for layer in (1, 2):
        out = tmp_path / f"attack{layer}"
        llava.build(out, {"model": SMALL, "epochs": 1, "batch_size": 32, "poison": POISON,
                          "attack": {"layers": [layer], "epochs": 1, "lr": 0.01}}, tmp_path / "data")
        runs[layer] = _weights(out)
        manifest = json.loads((out / "MANIFEST.json").read_text())
        assert len(manifest["losses"]) == 2 and manifest["poisoned_items"] == round(0.1 * 128)
    # the clean stage is the same in both builds: every weight outside layers 1 and 2 is equal,
    # and each build changed its own layer (the other's is the clean model's in both)
    # (the vision tower's encoder has layers of the same numbers: the prefix tells them apart)
    moved = {k for k in runs[1] if not torch.equal(runs[1][k], runs[2][k])}
    lm = "model.language_model.layers."
    assert moved and all(k.startswith((lm + "1.", lm + "2.")) for k in moved)
    assert any(k.startswith(lm + "1.") for k in moved) and any(k.startswith(lm + "2.") for k in moved)


@pytest.mark.parametrize("attack, poison, match", [
    ({"layers": [0], "epochs": 1, "lr": 0.01}, None, "attack needs poison"),
    ({"layers": [3], "epochs": 1, "lr": 0.01}, POISON, r"attack.layers \[3\]"),
    ({"layers": [0], "epochs": 1}, POISON, "exactly layers, epochs, lr"),
])
def test_a_bad_attack_names_what_is_wrong(tmp_path, attack, poison, match):
    shapes.build(tmp_path / "data", {"train": 32, "shots": 1, "reference": 8, "test": 8})
    with pytest.raises(ValueError, match=match):
        llava.build(tmp_path / "m", {"model": SMALL, "epochs": 1, "poison": poison, "attack": attack},
                    tmp_path / "data")
    assert not (tmp_path / "m").exists()
