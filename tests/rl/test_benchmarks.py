"""The benchmark registry the trainer plays through: splits, prompts, action projection, the
WebShop search offered under constrained decoding, and the dataset-defined WebShop split."""

from __future__ import annotations

import pytest

from repro import plugins, registry
from repro.rl import benchmarks
from repro.rl.prompts import Memory
from repro.rl.rollout import PromptOptions


def test_registered():
    plugins.load_all()
    assert set(registry.BENCHMARKS.names()) >= {"alfworld", "webshop"}
    ws = benchmarks.get("webshop")
    assert (ws.train_split, ws.val_split, ws.eval_splits, ws.score_key) == ("train", "test", ("test",), "task_score")
    names = ", ".join(sorted(registry.BENCHMARKS.names()))  # whichever the loaded plugins register
    with pytest.raises(KeyError, match=f"unknown benchmark 'sokoban'; registered: {names}\""):
        benchmarks.get("sokoban")


OBS = ("WebShop [SEP] Instruction: [SEP] i need a red mug, and price lower than 30.00 dollars [SEP] "
       "Search")


def test_webshop_prompt_lists_actions_one_per_line_and_drops_the_header():
    ws = benchmarks.get("webshop")
    task = ws.task_text(OBS)
    assert task == "i need a red mug, and price lower than 30.00 dollars"
    full = ws.prompt(OBS, ["search[<your query>]", "click[search]"], task, Memory(),
                     PromptOptions(history_length=2, style="full", require_think=True))
    assert "WebShop e-commerce platform" in full and f"Your task is to: {task}." in full
    assert "[\n'search[<your query>]',\n'click[search]',\n]" in full  # verl-agent's action list
    assert "Your current observation is: 'Search'." in full  # header and instruction dropped, quoted
    assert "<think> </think>" in full
    # constrained decoding (embedded): the search bar becomes one concrete search, the instruction
    constrained = PromptOptions(history_length=2, style="compact", require_think=False, constrain_to_admissible=True)
    compact = ws.prompt(OBS, ["search[<your query>]", "click[search]"], task, Memory(), constrained)
    assert f"'search[{task}]'," in compact and "<your query>" not in compact


def test_projection_tail_lengths_follow_the_reference():
    text = "no tags here, just a long rambling answer"
    assert benchmarks.get("alfworld").parse(text, False) == (text[-30:], False)
    assert benchmarks.get("webshop").parse(text, False) == (text[-20:], False)
    assert benchmarks.get("webshop").parse("<action> click[buy now] </action>", False) == ("click[buy now]", True)


def test_webshop_split_comes_from_the_dataset(tmp_path):
    from repro.data.webshop import generate_embedded

    generate_embedded(tmp_path / "ws", {"products_per_family": 2, "max_goals_per_product": 2, "eval_goals": 0.25})
    ws = benchmarks.get("webshop")
    test, train = (ws.list_games(tmp_path / "ws", s) for s in ("test", "train"))
    assert test == list(range(len(test))) and train[0] == len(test) and len(test) > 0
    assert len(test) == round(0.25 * (len(test) + len(train)))
    assert len(ws.list_games(tmp_path / "ws", "test", eval_goals=3)) == 3  # the study may override it
