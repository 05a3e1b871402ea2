"""ALFWorld datasets: the embedded generator (real AlfredTWEnv, real PDDL engine) and the
release download (local file:// and http://127.0.0.1 mirrors of the archive layout)."""

from __future__ import annotations

import functools
import glob
import http.server
import json
import os
import tempfile
import threading
import zipfile
from pathlib import Path

import pytest

# alfworld creates $ALFWORLD_DATA when imported; keep it in a temporary directory
if "ALFWORLD_DATA" not in os.environ:
    os.environ["ALFWORLD_DATA"] = tempfile.mkdtemp(prefix="alfworld-data-")

from repro.data.alfworld import (  # noqa: E402
    TASK_TYPES,
    fetch_full,
    generate_embedded,
    write_alfworld_config,
)
from repro.data.download import download  # noqa: E402
from repro.registry import DATASETS  # noqa: E402

SPLITS = ("train", "valid_seen", "valid_unseen")
# Small sizes keep the module fast (~25 s): 10 + 6 + 6 games still cover all six task types.
SMALL = {"seed": 3, "n_layouts_seen": 4, "n_layouts_unseen": 2,
         "games": {"train": 10, "valid_seen": 6, "valid_unseen": 6}}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("alfworld") / "embedded"
    generate_embedded(root, SMALL)
    return root


def _traj(split_root: Path) -> list[dict]:
    return [json.loads(Path(p).read_text())
            for p in sorted(glob.glob(str(split_root / "*" / "*" / "traj_data.json")))]


def test_registered():
    assert DATASETS.get("alfworld/embedded") is generate_embedded
    assert DATASETS.get("alfworld/full") is fetch_full


def test_layout_on_disk(data_root):
    manifest = json.loads((data_root / "MANIFEST.json").read_text())
    assert {"files", "params", "versions", "counts", "layouts"} <= set(manifest)
    assert manifest["versions"]["alfworld"] == "0.4.2"
    for split in SPLITS:
        trials = glob.glob(str(data_root / "json_2.1.1" / split / "*" / "trial_*"))
        assert len(trials) == SMALL["games"][split] == manifest["counts"][split]["games"]
        for t in trials:
            assert sorted(os.listdir(t)) == ["game.tw-pddl", "initial_state.pddl",
                                             "traj_data.json"]
            game = json.loads(Path(t, "game.tw-pddl").read_text())
            assert game["solvable"] is True and game["walkthrough"]
            assert game["pddl_problem"] == Path(t, "initial_state.pddl").read_text()
            assert "UNKNOWN GOAL" not in game["grammar"]
    assert (data_root / "logic" / "alfred.pddl").is_file()
    assert set(manifest["files"]) == {
        p.relative_to(data_root).as_posix() for p in data_root.rglob("*")
        if p.is_file() and p.name != "MANIFEST.json"}


def test_all_task_types_in_every_split(data_root):
    for split in SPLITS:
        types = {t["task_type"] for t in _traj(data_root / "json_2.1.1" / split)}
        assert types == set(TASK_TYPES.values()), split


def test_unseen_layouts_disjoint_from_train(data_root):
    manifest = json.loads((data_root / "MANIFEST.json").read_text())
    seen = {lay["scene"] for lay in manifest["layouts"]["seen"]}
    unseen = {lay["scene"] for lay in manifest["layouts"]["unseen"]}
    assert seen and unseen and not seen & unseen
    scene = lambda split: {int(d.rsplit("-", 1)[1])  # noqa: E731
                           for d in os.listdir(data_root / "json_2.1.1" / split)}
    assert scene("train") <= seen and scene("valid_seen") <= seen
    assert scene("valid_unseen") <= unseen
    seen_receps = {r["name"] for lay in manifest["layouts"]["seen"] for r in lay["receptacles"]}
    unseen_receps = {r["name"] for lay in manifest["layouts"]["unseen"]
                     for r in lay["receptacles"]}
    assert not seen_receps & unseen_receps
    # valid_seen: new task instances (task directories) in known rooms
    assert not (set(os.listdir(data_root / "json_2.1.1" / "valid_seen"))
                & set(os.listdir(data_root / "json_2.1.1" / "train")))


def test_generator_is_deterministic(tmp_path):
    small = {"seed": 11, "n_layouts_seen": 2, "n_layouts_unseen": 2, "num_workers": 1,
             "games": {"train": 3, "valid_seen": 2, "valid_unseen": 2}}
    generate_embedded(tmp_path / "a", small)
    generate_embedded(tmp_path / "b", small)
    generate_embedded(tmp_path / "c", {**small, "seed": 12})
    def files(d: str) -> dict:
        return json.loads((tmp_path / d / "MANIFEST.json").read_text())["files"]

    assert files("a") == files("b")
    assert files("a") != files("c")


def test_one_unseen_layout_skips_task_types_it_cannot_host(tmp_path):
    # the first room of a split is a kitchen: no desk lamp, so no look_at_obj_in_light there
    generate_embedded(tmp_path / "d", {"seed": 0, "n_layouts_seen": 2, "n_layouts_unseen": 1,
                                       "num_workers": 1,
                                       "games": {"train": 2, "valid_seen": 2, "valid_unseen": 6}})
    types = {t["task_type"] for t in _traj(tmp_path / "d" / "json_2.1.1" / "valid_unseen")}
    assert types == set(TASK_TYPES.values()) - {"look_at_obj_in_light"}


def test_games_win_in_unmodified_alfredtwenv(data_root):
    """Every game loads in alfworld's own AlfredTWEnv and its walkthrough wins it."""
    from alfworld.agents.environment import get_environment

    cfg = write_alfworld_config(data_root)
    seen_text = []
    for split, train_eval in (("train", "train"), ("valid_seen", "eval_in_distribution"),
                              ("valid_unseen", "eval_out_of_distribution")):
        tw_env = get_environment("AlfredTWEnv")(cfg, train_eval=train_eval)
        assert tw_env.num_games == SMALL["games"][split]
        env = tw_env.init_env(batch_size=1)
        try:
            env.seed(0)
            played = set()
            for _ in range(tw_env.num_games):
                obs, infos = env.reset()
                gamefile = infos["extra.gamefile"][0]
                played.add(gamefile)
                traj = json.loads((Path(gamefile).parent / "traj_data.json").read_text())
                assert obs[0].startswith("-= Welcome to TextWorld, ALFRED! =-")
                assert f"Your task is to: {traj['turk_annotations']['anns'][0]['task_desc']}." \
                    in obs[0]
                seen_text += [obs[0], *infos["admissible_commands"][0]]
                walkthrough = json.loads(Path(gamefile).read_text())["walkthrough"]
                for k, cmd in enumerate(walkthrough):
                    assert cmd in infos["admissible_commands"][0]
                    obs, scores, dones, infos = env.step([cmd])
                    seen_text += [obs[0], *infos["admissible_commands"][0]]
                    assert dones[0] == (k == len(walkthrough) - 1)
                assert infos["won"][0] and scores[0] == 1
            assert len(played) == tw_env.num_games
        finally:
            env.close()
    text = "\n".join(seen_text)
    assert "basinbasin" not in text
    assert "sinkbasin 1" in text


def test_write_alfworld_config_yaml(tmp_path):
    import yaml

    cfg = write_alfworld_config(tmp_path, path=tmp_path / "base_config.yaml")
    assert yaml.safe_load((tmp_path / "base_config.yaml").read_text()) == cfg
    assert cfg["dataset"]["eval_ood_data_path"] == str(
        tmp_path.resolve() / "json_2.1.1" / "valid_unseen")
    assert cfg["env"]["task_types"] == [1, 2, 3, 4, 5, 6]
    assert cfg["dagger"]["training"]["max_nb_steps_per_episode"] == 50
    assert cfg["general"]["training_method"] == "dagger"
    assert cfg["env"]["expert_type"] == "handcoded"


# ------------------------------------------------------------------------------------------
# Release download
# ------------------------------------------------------------------------------------------

ARCHIVES = {  # release archive -> file of each game it carries
    "0.2.2/json_2.1.1_json.zip": "traj_data.json",
    "0.2.2/json_2.1.1_pddl.zip": "initial_state.pddl",
    "0.4.0/json_2.1.2_tw-pddl.zip": "game.tw-pddl",
}


@pytest.fixture(scope="module")
def mirror(data_root, tmp_path_factory) -> Path:
    """A local mirror of the release: three zips laid out like ALFWorld's."""
    base = tmp_path_factory.mktemp("mirror")
    for rel, member in ARCHIVES.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(base / rel, "w") as zf:
            for p in sorted(data_root.glob(f"json_2.1.1/*/*/*/{member}")):
                zf.write(p, p.relative_to(data_root).as_posix())
    return base


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with ``Range: bytes=N-`` support (206), quiet, recording ranges asked."""

    ranges: list = []

    def log_message(self, *args):  # noqa: D102
        pass

    def do_GET(self):  # noqa: N802
        rng = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if not rng or not path.is_file():
            return super().do_GET()
        start = int(rng.split("=", 1)[1].split("-", 1)[0])
        data = path.read_bytes()
        type(self).ranges.append(start)
        self.send_response(206)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture()
def http_base(mirror):
    handler = functools.partial(_RangeHandler, directory=str(mirror))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _same_games(a: Path, b: Path) -> None:
    files = lambda r: {p.relative_to(r).as_posix(): p.read_bytes()  # noqa: E731
                       for p in (r / "json_2.1.1").rglob("*") if p.is_file()}
    assert files(a) == files(b)


def test_fetch_full_from_file_url(data_root, mirror, tmp_path):
    out = tmp_path / "alfworld" / "full"
    fetch_full(out, {"base_url": mirror.as_uri()})
    _same_games(out, data_root)
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert set(manifest["archives"]) == {r.rsplit("/", 1)[1] for r in ARCHIVES}
    from repro.io import sha256_file

    for rel in ARCHIVES:
        name = rel.rsplit("/", 1)[1]
        assert manifest["archives"][name]["sha256"] == sha256_file(mirror / rel)
    assert manifest["counts"] == {s: SMALL["games"][s] for s in SPLITS}
    assert (out / "logic" / "alfred.twl2").is_file()
    assert not (tmp_path / "alfworld" / ".full.downloads").exists()  # archives cleaned up


def test_fetch_full_over_http_with_checksums(data_root, mirror, http_base, tmp_path):
    from repro.io import sha256_file

    digests = {rel.rsplit("/", 1)[1]: sha256_file(mirror / rel) for rel in ARCHIVES}
    out = tmp_path / "full"
    archives = {rel.rsplit("/", 1)[1]: rel.split("/", 1)[0] for rel in ARCHIVES}  # config form
    fetch_full(out, {"base_url": http_base, "archives": archives, "sha256": digests})
    _same_games(out, data_root)


def test_fetch_full_checksum_mismatch_leaves_nothing(mirror, http_base, tmp_path):
    from repro.io import sha256_file

    digests = {rel.rsplit("/", 1)[1]: sha256_file(mirror / rel) for rel in ARCHIVES}
    digests["json_2.1.1_pddl.zip"] = "0" * 64
    out = tmp_path / "full"
    with pytest.raises(ValueError) as err:
        fetch_full(out, {"base_url": http_base, "sha256": digests})
    msg = str(err.value)
    assert "json_2.1.1_pddl.zip" in msg and "0" * 64 in msg
    assert sha256_file(mirror / "0.2.2/json_2.1.1_pddl.zip") in msg
    assert sorted(os.listdir(tmp_path)) == []  # no out_dir, no downloads, no temp dirs


def test_download_resumes_with_range(mirror, http_base, tmp_path):
    from repro.io import sha256_file

    rel = "0.4.0/json_2.1.2_tw-pddl.zip"
    blob = (mirror / rel).read_bytes()
    dest = tmp_path / "x.zip"
    Path(str(dest) + ".part").write_bytes(blob[:1000])  # an interrupted earlier download
    _RangeHandler.ranges.clear()
    digest = download(f"{http_base}/{rel}", dest, expected_sha256=sha256_file(mirror / rel),
                      progress=False)
    assert _RangeHandler.ranges == [1000]
    assert dest.read_bytes() == blob and digest == sha256_file(mirror / rel)
    assert not Path(str(dest) + ".part").exists()


class _DroppingHandler(_RangeHandler):
    """Sends the full ``Content-Length`` but closes the connection after ``keep`` bytes, for the
    first ``drops`` requests (a server or proxy dying mid-transfer); then behaves."""

    drops, keep, served = 0, 0, 0

    def do_GET(self):  # noqa: N802
        cls = type(self)
        cls.served += 1
        if cls.served > cls.drops:
            return super().do_GET()
        data = Path(self.translate_path(self.path)).read_bytes()
        start = int(self.headers["Range"].split("=", 1)[1].split("-", 1)[0]) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        self.wfile.write(data[start:start + cls.keep])
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture()
def dropping_server(mirror):
    handler = functools.partial(_DroppingHandler, directory=str(mirror))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _DroppingHandler
    server.shutdown()
    server.server_close()


def test_download_survives_a_server_dropping_mid_transfer(mirror, dropping_server, tmp_path):
    from repro.io import sha256_file

    base, handler = dropping_server
    rel = "0.4.0/json_2.1.2_tw-pddl.zip"
    blob = (mirror / rel).read_bytes()
    handler.drops, handler.keep, handler.served = 1, len(blob) // 3, 0
    _RangeHandler.ranges.clear()
    dest = tmp_path / "x.zip"
    digest = download(f"{base}/{rel}", dest, expected_sha256=sha256_file(mirror / rel), progress=False)
    assert dest.read_bytes() == blob and digest == sha256_file(mirror / rel)
    assert _RangeHandler.ranges == [len(blob) // 3]  # the retry resumed where the drop left off


def test_download_gives_up_clearly_then_a_rerun_resumes(mirror, dropping_server, tmp_path):
    from repro.io import sha256_file

    base, handler = dropping_server
    rel = "0.4.0/json_2.1.2_tw-pddl.zip"
    blob = (mirror / rel).read_bytes()
    handler.drops, handler.keep, handler.served = 10**6, 100, 0  # every request drops
    dest = tmp_path / "x.zip"
    with pytest.raises(OSError) as err:
        download(f"{base}/{rel}", dest, expected_sha256=sha256_file(mirror / rel), progress=False,
                 retries=1)
    assert "x.zip" in str(err.value) or "127.0.0.1" in str(err.value)
    assert not dest.exists()  # only a verified file ever appears under its name
    handler.drops = 0  # the server is good again: the rerun resumes the .part
    download(f"{base}/{rel}", dest, expected_sha256=sha256_file(mirror / rel), progress=False)
    assert dest.read_bytes() == blob and not Path(str(dest) + ".part").exists()


def test_fetch_full_truncated_archive_then_good_source(data_root, mirror, http_base, tmp_path):
    """A truncated archive on the server: the error names it with both digests and nothing is
    left; once the server has the whole file again the same command succeeds."""
    from repro.io import sha256_file

    digests = {rel.rsplit("/", 1)[1]: sha256_file(mirror / rel) for rel in ARCHIVES}
    rel = "0.2.2/json_2.1.1_json.zip"
    blob = (mirror / rel).read_bytes()
    out = tmp_path / "work" / "full"
    try:
        (mirror / rel).write_bytes(blob[: len(blob) // 2])
        with pytest.raises(ValueError) as err:
            fetch_full(out, {"base_url": http_base, "sha256": digests})
        msg = str(err.value)
        assert "json_2.1.1_json.zip" in msg and digests["json_2.1.1_json.zip"] in msg
        assert sha256_file(mirror / rel) in msg  # the actual digest, of the truncated file
        assert not (tmp_path / "work").exists() or os.listdir(tmp_path / "work") == []
    finally:
        (mirror / rel).write_bytes(blob)
    fetch_full(out, {"base_url": http_base, "sha256": digests})
    _same_games(out, data_root)


def test_unpack_zip_refuses_paths_outside(tmp_path):
    from repro.data.download import unpack_zip

    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("json_2.1.1/ok.txt", "fine")
        zf.writestr("../escape.txt", "not fine")
    with pytest.raises(ValueError, match="unsafe path"):
        unpack_zip(tmp_path / "evil.zip", tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "out" / "json_2.1.1" / "ok.txt").exists()  # checked before writing


def test_a_dot_z_digit_in_the_path_does_not_select_the_z_machine(tmp_path):
    """TextWorld's GenericEnvironment picks Jericho for any path matching '\\.z[1-8]' (a temporary
    folder '.embedded.z3ab…' did, once in a test run); generation and play go through PddlEnv."""
    from repro.envs.alfworld import make_chain

    root = tmp_path / "data.z3"
    small = {**SMALL, "games": {"train": 2, "valid_seen": 1, "valid_unseen": 1}}
    generate_embedded(root, small)  # the planner confirms every game under this path
    game = next(root.rglob("*.tw-pddl"))
    env, _ = make_chain(max_steps=5)
    env.load(str(game))
    obs, infos = env.reset()
    assert "admissible_commands" in infos and infos["admissible_commands"]
