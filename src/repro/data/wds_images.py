"""``images/<name>`` (``NAMES``): the paper scale's image data, from WebDataset repositories on the
Hugging Face Hub.

The vision-language studies read one dataset folder per benchmark with the splits of
``shapes/embedded`` (``train`` image-caption pairs; ``fewshot``, ``reference``, ``test`` labelled
images). At the paper scale the labelled images come from CLIP_benchmark's WebDataset exports
(``clip-benchmark/wds_imagenet1k``, ``wds_vtab-caltech101``, ``wds_vtab-pets``, ``wds_food101``:
``<split>/<i>.tar`` shards of ``<key>.{webp,png,jpg,jpeg}`` + ``<key>.cls``, with ``classnames.txt``
and ``zeroshot_classification_templates.txt`` at the root) and the pairs from a captioned
WebDataset (CC3M as ``pixparse/cc3m-wds``: ``<key>.jpg`` + ``<key>.txt``). Each repository is a
snapshot through ``repro.models.hub.fetch_verified`` (the Hub, a mirror or a ``file://`` local HF
cache; every file checked against the commit's tree listing; only the shards a split needs).

``params``::

    image_size: 224              # CLIP's preprocessing: shorter side resized (bicubic), centre crop
    seed: 0                      # which images each split draws
    sources:                     # name -> repo_id, revision (null: main, resolved and recorded),
      imagenet: {repo_id: clip-benchmark/wds_imagenet1k, revision: null, kind: labelled}
      cc3m: {repo_id: pixparse/cc3m-wds, revision: null, kind: captioned, shards: "cc3m-train-*.tar"}
    splits:                      # output split -> source, its split (labelled), how many
      reference: {source: imagenet, from: test, n: 200}
      test: {source: imagenet, from: test}             # no n: every image not drawn before
      fewshot: {source: imagenet, from: train, per_class: 16}
      train: {source: cc3m, n: 250000}

Splits drawn from the same source split are disjoint, drawn in the order listed (seeded). A
labelled record has ``label``, ``class`` and the class prompt as ``caption``; a captioned record has
``label`` -1 and the pair's text. ``classes`` (MANIFEST) are the labelled source's class names (at
most one labelled source per dataset); a dataset of pairs only has none.

``class_texts`` (optional): BDetCLIP's official text resources (``class_texts``), or
``{generate: {...}}`` to have the dataset entry's ``job.generator`` (an LLM) write them
(``repro.data.describe``), written as ``class_texts.json`` (class -> benign descriptions; class ->
unrelated sentence).

Files per split: ``<split>.images.npy`` (uint8 N x S x S x 3, written in place and read
memory-mapped: 500k CC3M pairs at 224 px are 75 GB), ``<split>.labels.npy`` and ``<split>.jsonl``
(``repro.data.shapes.load_split`` reads both this layout and the embedded ``.npz``).
"""

from __future__ import annotations

import fnmatch
import io
import json
import logging
import re
import tarfile
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from repro import io as rio
from repro.data.shapes import CLASS_PROMPT  # a labelled record's caption
from repro.registry import DATASETS

log = logging.getLogger(__name__)

IMAGE_EXTS = ("webp", "png", "jpg", "jpeg")
KINDS = ("labelled", "captioned")


def clip_preprocess(data: bytes, size: int) -> np.ndarray:
    """Encoded image -> uint8 ``size`` x ``size`` x 3: RGB, shorter side resized to ``size``
    (bicubic), centre crop (CLIP's test-time transform, without the normalisation)."""
    from PIL import Image  # noqa: PLC0415

    img = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = img.size
    scale = size / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BICUBIC)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def samples(shard: Path, keys: set[str] | None = None, want: tuple[str, ...] = ()) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) of each sample of a WebDataset tar shard, in shard order; ``keys``:
    only those samples; ``want``: only members with these extensions are read."""
    group: dict[str, dict[str, bytes]] = {}
    order: list[str] = []
    with tarfile.open(shard) as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = member.name.rsplit("/", 1)[-1]
            key, _, ext = name.partition(".")
            key = member.name[: len(member.name) - len(name)] + key
            if (keys is not None and key not in keys) or (want and ext.lower() not in want):
                continue
            if key not in group:
                group[key] = {}
                order.append(key)
            group[key][ext.lower()] = tar.extractfile(member).read()
    for key in order:
        yield key, group[key]


def _check(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    sources, splits = params.get("sources") or {}, params.get("splits") or {}
    allowed = {"image_size", "seed", "sources", "splits", "class_texts", "source", "endpoint"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"images/wds: unknown params {unknown}; allowed: {', '.join(sorted(allowed))}")
    if not sources or not splits:
        raise ValueError("images/wds: params.sources and params.splits must both name at least one entry")
    for name, spec in sources.items():
        if spec.get("kind") not in KINDS:
            raise ValueError(f"images/wds: sources.{name}.kind {spec.get('kind')!r}; allowed: {', '.join(KINDS)}")
        if spec["kind"] == "captioned" and not spec.get("shards"):
            raise ValueError(f"images/wds: sources.{name} (captioned) needs shards, a glob of its tar files")
    if "generate" in (params.get("class_texts") or {}):
        from repro.data import describe  # noqa: PLC0415

        describe.check(params["class_texts"]["generate"] or {})
    if sum(s["kind"] == "labelled" for s in sources.values()) > 1:
        raise ValueError("images/wds: at most one labelled source per dataset (its class names are the classes)")
    for name, spec in splits.items():
        if spec.get("source") not in sources:
            raise ValueError(f"images/wds: splits.{name}.source {spec.get('source')!r} is not in sources "
                             f"({', '.join(sources)})")
        labelled = sources[spec["source"]]["kind"] == "labelled"
        if labelled and not spec.get("from"):
            raise ValueError(f"images/wds: splits.{name} draws from a labelled source: say which of its splits (from)")
        if spec.get("per_class") is not None and not labelled:
            raise ValueError(f"images/wds: splits.{name}.per_class needs a labelled source")
        if spec.get("n") is not None and spec.get("per_class") is not None:
            raise ValueError(f"images/wds: splits.{name}: give n or per_class, not both")
    return sources, splits


def _shards(snap: Path, source: dict[str, Any], split_from: str | None) -> list[Path]:
    pattern = source.get("shards") or f"{split_from}/*.tar"
    found = sorted((p for p in snap.rglob("*.tar") if fnmatch.fnmatch(p.relative_to(snap).as_posix(), pattern)),
                   key=lambda p: (p.parent.as_posix(), int(p.stem) if p.stem.isdigit() else 0, p.name))
    if not found:
        have = sorted({p.relative_to(snap).parent.as_posix() for p in snap.rglob("*.tar")})
        raise FileNotFoundError(f"images/wds: no shard matches {pattern!r} in {source['repo_id']}; "
                                f"folders with shards: {have or 'none'}")
    return found


def _index(shards: list[Path], labelled: bool) -> list[tuple[int, str, int]]:
    """(shard index, key, label or -1) of every sample with an image (and a label when labelled)."""
    out = []
    want = ("cls",) if labelled else ("txt",)
    for i, shard in enumerate(shards):
        for key, parts in samples(shard, want=want):
            out.append((i, key, int(parts["cls"].decode().strip()) if labelled else -1))
    return out


def _draw(index: list[tuple[int, str, int]], spec: dict[str, Any], taken: set[int], rng: np.random.Generator,
          name: str) -> list[int]:
    free = [i for i in rng.permutation(len(index)).tolist() if i not in taken]
    if spec.get("per_class") is not None:
        k, count, chosen = int(spec["per_class"]), defaultdict(int), []
        for i in free:
            label = index[i][2]
            if count[label] < k:
                count[label] += 1
                chosen.append(i)
        short = {c: n for c, n in count.items() if n < k}
        if short:
            log.warning("images/wds: %s: %d classes have fewer than %d images left", name, len(short), k)
    else:
        n = spec.get("n")
        if n is not None and n > len(free):
            raise ValueError(f"images/wds: splits.{name}.n = {n}, but only {len(free)} images are left in its source")
        chosen = free if n is None else free[: int(n)]
    return sorted(chosen)  # shard order: one pass per shard when decoding


def class_texts(spec: dict[str, Any], classes: list[str], scratch: Path,
                generator_dir: Path | None = None) -> dict[str, Any]:
    """BDetCLIP's text resources (other-papers.md §3.4): ``benign`` (a JSON file, class -> its
    descriptions) and ``malignant`` (one class-unrelated sentence per line, in class order, numbering
    like "12. " or "12 " and quotes stripped), each ``{url, sha256}`` (a ``file://`` or HTTP URL);
    or ``{generate: {...}}``: written by the LLM in ``generator_dir`` (``repro.data.describe``)."""
    from repro.data.download import download  # noqa: PLC0415

    if "generate" in spec:
        from repro.data import describe  # noqa: PLC0415

        if set(spec) != {"generate"} or generator_dir is None:
            raise ValueError("images/wds: class_texts.generate is written by the dataset entry's job.generator "
                             "(an LLM model) and takes no other class_texts key"
                             + ("" if generator_dir else "; this dataset has no generator"))
        return describe.generate(generator_dir, classes, spec["generate"] or {})
    unknown = sorted(set(spec) - {"benign", "malignant"})
    if unknown or not spec.get("benign") or not spec.get("malignant"):
        raise ValueError(f"images/wds: class_texts needs benign and malignant ({{url, sha256}}); got {sorted(spec)}")
    files, digests = {}, {}
    for kind in ("benign", "malignant"):
        files[kind] = scratch / f"class_texts_{kind}"
        digests[kind] = download(spec[kind]["url"], files[kind], spec[kind].get("sha256"), progress=False)
    benign = json.loads(files["benign"].read_text(encoding="utf-8"))
    missing = [c for c in classes if c not in benign]
    if missing:
        raise ValueError(f"images/wds: class_texts.benign has no descriptions for {len(missing)} classes, "
                         f"e.g. {missing[:5]}")
    lines = [ln for ln in files["malignant"].read_text(encoding="utf-8").splitlines() if ln.strip()]
    if len(lines) != len(classes):
        raise ValueError(f"images/wds: class_texts.malignant has {len(lines)} sentences for {len(classes)} classes")
    unrelated = [re.sub(r"^\s*\d+[.)]?\s+", "", ln).replace('"', "").strip() for ln in lines]
    return {"benign": {c: list(benign[c]) for c in classes}, "unrelated": dict(zip(classes, unrelated)),
            "sources": {k: {"url": spec[k]["url"], "sha256": digests[k]} for k in ("benign", "malignant")}}


#: the paper-scale datasets of the vision-language studies, one registered name each (the sources
#: and splits come from the study config)
NAMES = ("images/imagenet1k", "images/caltech101", "images/oxford_pets", "images/food101", "images/cc3m")


def build(out_dir: Path, params: dict[str, Any], generator_dir: Path | None = None) -> None:
    """Fetch the sources, draw and write the splits (and ``class_texts.json``; ``generator_dir``: the
    LLM that writes them where ``class_texts`` says ``generate``)."""
    from repro.data.math_dapo import resolve_revision  # noqa: PLC0415
    from repro.models.hub import fetch_verified  # noqa: PLC0415

    sources, splits = _check(params)
    size, rng = int(params.get("image_size", 224)), np.random.default_rng(params.get("seed", 0))
    hub = {k: params[k] for k in ("source", "endpoint") if k in params}
    with rio.atomic_dir(Path(out_dir)) as tmp, tempfile.TemporaryDirectory() as scratch:
        manifest: dict[str, Any] = {"dataset": "images/wds", "params": params, "sources": {}, "splits": {},
                                    "classes": [], "templates": [], "attributes": {}}
        snaps = {}
        for name, src in sources.items():
            revision = resolve_revision(src["repo_id"], src.get("revision"), hub)
            froms = sorted({s["from"] for s in splits.values() if s["source"] == name and s.get("from")})
            allow = ([src["shards"]] if src["kind"] == "captioned"
                     else ["classnames.txt", "zeroshot_classification_templates.txt", *(f"{f}/*" for f in froms)])
            snap = Path(scratch) / name
            snap.mkdir()
            files, recorded, tree = fetch_verified(snap, src["repo_id"], revision, {**hub, "allow_patterns": allow},
                                                   repo_type="dataset")
            snaps[name] = snap
            manifest["sources"][name] = {"repo_id": src["repo_id"], "revision": revision, "kind": src["kind"],
                                         "source": recorded, "verified_against_hub_tree": tree is not None,
                                         "files": len(files)}
            if src["kind"] == "labelled":
                classes = (snap / "classnames.txt")
                if not classes.exists():
                    raise FileNotFoundError(f"images/wds: {src['repo_id']} has no classnames.txt")
                manifest["classes"] = [c.strip() for c in classes.read_text().splitlines() if c.strip()]
                templates = snap / "zeroshot_classification_templates.txt"
                if templates.exists():
                    manifest["templates"] = [t.strip() for t in templates.read_text().splitlines() if t.strip()]
        # before the images: a generator that cannot write the texts fails the dataset at once
        texts = params.get("class_texts") and class_texts(params["class_texts"], manifest["classes"], Path(scratch),
                                                          generator_dir)
        indexed: dict[tuple[str, str | None], tuple[list[Path], list[tuple[int, str, int]], set[int]]] = {}
        drawn: dict[tuple[str, str | None], dict[str, list[tuple[int, str, int]]]] = {}
        for split, spec in splits.items():
            src = sources[spec["source"]]
            labelled = src["kind"] == "labelled"
            where = (spec["source"], spec.get("from") if labelled else None)
            if where not in indexed:
                shards = _shards(snaps[spec["source"]], src, where[1])
                indexed[where] = (shards, _index(shards, labelled), set())
                log.info("images/wds: %s %s: %d samples in %d shards", *where, len(indexed[where][1]), len(shards))
            shards, index, taken = indexed[where]
            chosen = _draw(index, spec, taken, rng, split)
            taken.update(chosen)
            drawn.setdefault(where, {})[split] = [index[i] for i in chosen]
            manifest["splits"][split] = len(chosen)
            log.info("images/wds: %s <- %d images of %s", split, len(chosen), "/".join(filter(None, where)))
        for where, splits_of in drawn.items():  # one pass over each source's shards for all its splits
            _write_splits(tmp, splits_of, indexed[where][0], size, sources[where[0]]["kind"] == "labelled",
                          manifest["classes"])
        if texts:
            rio.write_json(tmp / "class_texts.json", texts)
        manifest["files"] = rio.sha256_tree(tmp)
        rio.write_json(tmp / "MANIFEST.json", manifest)


for _name in NAMES:
    DATASETS.register(_name)(build)


def write_splits(tmp: Path, sizes: dict[str, int], size: int,
                 samples: Iterator[tuple[str, int, bytes, dict[str, Any]]], progress_every: int = 0) -> None:
    """Per split: ``<split>.images.npy`` (memory-mapped, uint8 n x size x size x 3),
    ``<split>.labels.npy`` and ``<split>.jsonl``, from (split, position, encoded image, record with
    ``label``) in any order: the splits drawn from one source are written in one pass over it."""
    images = {split: np.lib.format.open_memmap(tmp / f"{split}.images.npy", mode="w+", dtype=np.uint8,
                                               shape=(n, size, size, 3)) for split, n in sizes.items()}
    records: dict[str, list[dict[str, Any] | None]] = {split: [None] * n for split, n in sizes.items()}
    for done, (split, pos, data, record) in enumerate(samples, 1):
        images[split][pos] = clip_preprocess(data, size)
        records[split][pos] = record
        if progress_every and done % progress_every == 0:
            log.info("%s: %d / %d images", "+".join(sizes), done, sum(sizes.values()))
    for split, recs in records.items():
        missing = sum(r is None for r in recs)
        if missing:
            raise ValueError(f"{split}: {missing} of {len(recs)} drawn samples were not found when decoding")
        images[split].flush()
        np.save(tmp / f"{split}.labels.npy", np.array([r["label"] for r in recs], np.int64))
        rio.write_text(tmp / f"{split}.jsonl", "".join(json.dumps(r) + "\n" for r in recs))
    images.clear()


def _write_splits(tmp: Path, drawn: dict[str, list[tuple[int, str, int]]], shards: list[Path], size: int,
                  labelled: bool, classes: list[str]) -> None:
    """The splits ``drawn`` (split -> rows) from one source's ``shards``, in one pass over them."""
    by_shard: dict[int, dict[str, tuple[str, int]]] = defaultdict(dict)
    for split, rows in drawn.items():
        for pos, (shard, key, _) in enumerate(rows):
            by_shard[shard][key] = (split, pos)

    def decoded():
        for shard, keys in sorted(by_shard.items()):
            for key, parts in samples(shards[shard], set(keys)):
                image = next((parts[e] for e in IMAGE_EXTS if e in parts), None)
                if image is None:
                    raise ValueError(f"images/wds: {shards[shard].name}: sample {key} has no image ({sorted(parts)})")
                split, pos = keys[key]
                label = drawn[split][pos][2]
                yield split, pos, image, ({"label": label, "class": classes[label],
                                           "caption": CLASS_PROMPT.format(classes[label]), "key": key} if labelled
                                          else {"label": -1, "caption": parts.get("txt", b"").decode().strip(),
                                                "key": key})
    write_splits(tmp, {split: len(rows) for split, rows in drawn.items()}, size, decoded(), progress_every=5000)
