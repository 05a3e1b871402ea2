"""``search/embedded``: a generated knowledge base of entity facts with single- and two-hop questions.

The embedded counterpart of Search-R1's wiki-18 + NQ / HotpotQA (agentic-rl.md §3.6.4, §4.4): a
corpus of one passage per entity, in wiki-18's ``"Title"\\ntext`` format, and questions whose
answers are in the corpus but not in the questions. Entities: countries, cities (each in a
country), companies (each based in a city) and people (a first and a last name from small pools;
each born in a city and working for a company). Questions (``source``):

- ``single``: one fact of one entity (where was P born, whom does P work for, which country is C
  in, in which city is O based); the passage of the entity the question names holds the answer;
- ``multi``: two hops through a person (the country P was born in: P's passage names the city,
  the city's passage the country; the city P's company is based in).

Every question records ``hops``, the entity names a searcher has to look up in order (the warm
start's demonstrations follow them; the agents never see them). Test questions are about people
no train or valid question names (a disjoint set of first / last name pairs; every name part and
every answer word occurs in train), so their facts can only come from the corpus: a model that
answers without searching is at chance. Splits: ``train``, ``valid``, ``test``; ``corpus.jsonl``;
``retriever.json`` = BM25 (``repro.envs.search.retrieval``; the paper's E5 is the paper scale's).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from repro import io as rio
from repro.registry import DATASETS

DEFAULTS: dict[str, Any] = {"seed": 0, "people": 240, "cities": 16, "companies": 12, "countries": 5,
                            "test_people": 0.25,     # share of the people only test / valid ask about
                            "train": 2000, "valid": 64, "test": 256,
                            "multi_hop": 0.5}        # share of person questions that take two hops

_SYL = ["ka", "lo", "mi", "ren", "ta", "vo", "zu", "bel", "dar", "fen", "gor", "hal", "jin", "mor", "nes",
        "pol", "quin", "sar", "tul", "wen"]

# relation -> (question phrasings, fact as the entity's passage states it); {e} the entity
PERSON_FACTS = {"born": ("{e} was born in {v}.", ["Where was {e} born?", "In which city was {e} born?"]),
                "employer": ("{e} works for {v}.", ["Which company does {e} work for?", "Who employs {e}?"])}
PLACE_FACTS = {"country": ("{e} is a city in {v}.", ["Which country is {e} in?"]),
               "based": ("{e} is based in {v}.", ["In which city is {e} based?"])}
TWO_HOP = {"born_country": (("born", "country"), ["In which country was {e} born?"]),
           "employer_city": (("employer", "based"), ["In which city is the company {e} works for based?"])}


def _names(rng: random.Random, n: int, parts: int, taken: set[str]) -> list[str]:
    """``n`` distinct capitalised names of ``parts`` syllables, none in ``taken``."""
    out: list[str] = []
    while len(out) < n:
        name = "".join(rng.choice(_SYL) for _ in range(parts)).capitalize()
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


def generate(params: dict[str, Any]) -> dict[str, Any]:
    """The corpus and the splits (module docstring); deterministic in ``params``."""
    p = {**DEFAULTS, **params}
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"search/embedded: unknown params {unknown}; allowed: {sorted(DEFAULTS)}")
    rng = random.Random(p["seed"])
    taken: set[str] = set()
    countries = _names(rng, p["countries"], 2, taken)
    cities = _names(rng, p["cities"], 2, taken)
    companies = [f"{n} Corp" for n in _names(rng, p["companies"], 2, taken)]
    firsts, lasts = _names(rng, 16, 2, taken), _names(rng, 16, 2, taken)
    pairs = [f"{f} {g}" for f in firsts for g in lasts]
    if p["people"] > len(pairs):
        raise ValueError(f"search/embedded: people {p['people']} > {len(pairs)} distinct names")
    people = rng.sample(pairs, p["people"])
    facts: dict[str, dict[str, str]] = {c: {"country": rng.choice(countries)} for c in cities}
    facts.update({o: {"based": rng.choice(cities)} for o in companies})
    facts.update({h: {"born": rng.choice(cities), "employer": rng.choice(companies)} for h in people})
    corpus = []
    for entity in countries + cities + companies + people:
        told = [(PERSON_FACTS | PLACE_FACTS)[r][0].format(e=entity, v=v) for r, v in facts.get(entity, {}).items()]
        text = " ".join(told) or f"{entity} is a country."
        corpus.append({"id": str(len(corpus)), "contents": f'"{entity}"\n{text}'})

    def question(entity: str, kind: str) -> dict[str, Any]:
        if kind in TWO_HOP:
            (r1, r2), phrases = TWO_HOP[kind]
            mid = facts[entity][r1]
            return {"question": rng.choice(phrases).format(e=entity), "answers": [facts[mid][r2]],
                    "source": "multi", "hops": [entity, mid]}
        phrases = (PERSON_FACTS | PLACE_FACTS)[kind][1]
        return {"question": rng.choice(phrases).format(e=entity), "answers": [facts[entity][kind]],
                "source": "single", "hops": [entity]}

    n_test = max(1, round(p["test_people"] * len(people)))
    held, seen_people = people[:n_test], people[n_test:]

    def person_question(pool: list[str]) -> dict[str, Any]:
        kind = rng.choice(list(TWO_HOP) if rng.random() < p["multi_hop"] else list(PERSON_FACTS))
        return question(rng.choice(pool), kind)

    out: dict[str, list[dict[str, Any]]] = {"test": [], "valid": [], "train": []}
    asked: set[str] = set()
    for split in ("test", "valid", "train"):
        tries = 0
        while len(out[split]) < p[split]:
            tries += 1
            if tries > 50 * p[split] + 1000:
                raise ValueError(f"search/embedded: cannot draw {p[split]} distinct {split} questions "
                                 f"from {len(people)} people; lower {split} or raise people")
            if split == "train" and rng.random() < 0.25:  # facts of places and companies
                ent = rng.choice(cities + companies)
                rec = question(ent, "country" if ent in cities else "based")
            else:
                rec = person_question(held if split != "train" else seen_people)
            if rec["question"] in asked and split != "train":
                continue
            asked.add(rec["question"])
            out[split].append({"id": f"{split}-{len(out[split]):05d}", **rec})
    return {"corpus": corpus, "splits": out, "params": p}


@DATASETS.register("search/embedded")
def build(out_dir: Path, params: dict[str, Any]) -> None:
    data = generate(params)
    with rio.atomic_dir(Path(out_dir)) as tmp:
        rio.write_text(tmp / "corpus.jsonl", "".join(json.dumps(r) + "\n" for r in data["corpus"]))
        for split, rows in data["splits"].items():
            rio.write_text(tmp / f"{split}.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        rio.write_json(tmp / "retriever.json", {"kind": "bm25", "k1": 0.9, "b": 0.4})
        rio.write_json(tmp / "MANIFEST.json", {
            "dataset": "search/embedded", "params": data["params"], "corpus": len(data["corpus"]),
            "splits": {k: len(v) for k, v in data["splits"].items()}, "files": rio.sha256_tree(tmp)})
