"""``math/embedded``: generated arithmetic and algebra word problems with exact integer answers.

Five families (``source``): ``add``, ``sub``, ``mul`` (one step), ``two_step`` (a + b - c) and
``linear`` (solve a x + b = c). Each family has several phrasings; every train problem carries a
worked solution in the format the warm start learns (``"12 + 7 = 19. #### 19"``). Test problems
are unseen: no test question occurs in train or valid, a multi-step test problem's operand tuple
never occurs there (a deterministic hash partition of the tuples), and a quarter of the test
problems are phrased with a template train never shows. Every arithmetic fact a test answer needs
(a + b, s - c, a * b for the stated ranges) still occurs in train, as a pretrained model would
know it: what is new is the problem, not the arithmetic.
Splits: ``train`` (RL prompts and the warm start's worked solutions), ``valid`` (train-time
validation), ``test`` (evaluation).
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

from repro import io as rio
from repro.registry import DATASETS

DEFAULTS: dict[str, Any] = {"seed": 0, "train": 2000, "valid": 64, "test": 256,
                            "max_number": 12,         # largest number a sum or difference starts from
                            "test_fraction": 0.2,     # multi-step operand tuples reserved for test
                            "held_out_phrasing": 0.25}  # test problems phrased with a held-out template

NAMES = ["Ann", "Ben", "Cara", "Dan", "Eve", "Finn", "Gia", "Hugo", "Ivy", "Jon"]
ITEMS = ["apples", "books", "coins", "pens", "cards", "shells", "stamps", "marbles"]

# family -> (train phrasings, held-out phrasings); fields: {n} name, {i} item, {a} {b} {c} numbers
PHRASES: dict[str, tuple[list[str], list[str]]] = {
    "add": (["{n} has {a} {i}. {n} gets {b} more {i}. How many {i} does {n} have now?",
             "There are {a} {i} in a box and {b} {i} on a shelf. How many {i} are there in all?"],
            ["{n} found {a} {i} and then found {b} more. How many {i} did {n} find?"]),
    "sub": (["{n} has {a} {i} and gives away {b}. How many {i} are left?",
             "A box holds {a} {i}. {b} {i} are taken out. How many {i} remain in the box?"],
            ["{n} had {a} {i} but lost {b} of them. How many {i} does {n} have now?"]),
    "mul": (["{n} has {a} bags with {b} {i} in each bag. How many {i} does {n} have?",
             "Each shelf holds {b} {i}. How many {i} do {a} shelves hold?"],
            ["{a} friends each bring {b} {i}. How many {i} do they bring in total?"]),
    "two_step": (["{n} has {a} {i}, gets {b} more and then gives away {c}. How many {i} does {n} have?",
                  "A box holds {a} {i}. {b} {i} are added and {c} are taken out. How many {i} are in the box?"],
                 ["{n} collected {a} {i}, bought {b} more and gave {c} to a friend. How many {i} are left?"]),
    "linear": (["Solve for x: {a} * x + {b} = {c}.",
                "Find x if {a} * x + {b} = {c}."],
               ["What value of x makes {a} * x + {b} = {c} true?"]),
}


#: families whose test problems hold out operand tuples (their steps are facts train teaches)
MULTI_STEP = ("two_step", "linear")


def _operands(family: str, rng: random.Random, n: int) -> tuple[int, ...]:
    """Operands of one problem; ``n`` bounds the numbers a problem states (products: 2-9)."""
    if family == "add":
        return rng.randint(1, n), rng.randint(1, n)
    if family == "sub":
        a = rng.randint(2, 2 * n)
        return a, rng.randint(1, a - 1)
    if family == "mul":
        return rng.randint(2, 9), rng.randint(2, 9)
    if family == "two_step":
        a, b = rng.randint(1, n), rng.randint(1, n)
        return a, b, rng.randint(1, a + b - 1)
    a, x = rng.randint(2, 5), rng.randint(1, 9)  # linear: a x + b = c with an integer root
    b = rng.randint(1, n)
    return a, b, a * x + b


def _solve(family: str, ops: tuple[int, ...]) -> tuple[int, str]:
    """(answer, worked solution) of one problem."""
    if family == "add":
        a, b = ops
        return a + b, f"{a} + {b} = {a + b}."
    if family == "sub":
        a, b = ops
        return a - b, f"{a} - {b} = {a - b}."
    if family == "mul":
        a, b = ops
        return a * b, f"{a} * {b} = {a * b}."
    if family == "two_step":
        a, b, c = ops
        return a + b - c, f"{a} + {b} = {a + b}. {a + b} - {c} = {a + b - c}."
    a, b, c = ops
    x = (c - b) // a
    return x, f"{a} * x = {c} - {b} = {c - b}. x = {c - b} / {a} = {x}."


def _is_test_tuple(family: str, ops: tuple[int, ...], fraction: float) -> bool:
    h = hashlib.sha256(f"{family}:{ops}".encode()).digest()
    return int.from_bytes(h[:4], "big") / 2**32 < fraction


def generate(params: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The three splits' problems (deterministic in ``params``)."""
    p = {**DEFAULTS, **params}
    rng = random.Random(p["seed"])
    families = list(PHRASES)
    out: dict[str, list[dict[str, Any]]] = {"train": [], "valid": [], "test": []}
    seen: set[tuple] = set()
    for split in ("test", "valid", "train"):
        want, tries = int(p[split]), 0
        while len(out[split]) < want:
            tries += 1
            if tries > 200 * want + 1000:
                raise ValueError(f"math/embedded: cannot draw {want} distinct {split} problems; lower the size")
            fam = rng.choice(families)  # a family whose tuples run out (mul) is redrawn
            ops = _operands(fam, rng, int(p["max_number"]))
            if fam in MULTI_STEP and (_is_test_tuple(fam, ops, p["test_fraction"]) != (split == "test")
                                      or (fam, ops) in seen):
                continue
            train_ph, held_ph = PHRASES[fam]
            held = split == "test" and rng.random() < p["held_out_phrasing"]
            template = rng.choice(held_ph if held else train_ph)
            question = template.format(n=rng.choice(NAMES), i=rng.choice(ITEMS), **dict(zip("abc", ops)))
            if question in seen:  # test first: no later split repeats a test or valid question
                continue
            seen.update({(fam, ops), question})
            answer, steps = _solve(fam, ops)
            rec = {"id": f"{split}-{len(out[split]):05d}", "question": question, "answer": str(answer),
                   "source": fam, "held_out_phrasing": held}
            if split == "train":
                rec["solution"] = f"{steps} #### {answer}"
            out[split].append(rec)
    return out


@DATASETS.register("math/embedded")
def build(out_dir: Path, params: dict[str, Any]) -> None:
    rio.write_jsonl_dataset(out_dir, "math/embedded", {**DEFAULTS, **params}, generate(params))

