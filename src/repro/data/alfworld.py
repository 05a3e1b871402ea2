"""ALFWorld datasets: a generated embedded variant and the paper-scale release download.

Both variants write ALFWorld's own on-disk layout (reference/environments.md §1.3)::

    <out_dir>/json_2.1.1/{train,valid_seen,valid_unseen}/
        <task_type>-<Obj>-<MRecep|None>-<Recep>-<scene>/trial_<id>/
            traj_data.json  initial_state.pddl  game.tw-pddl
    <out_dir>/logic/{alfred.pddl,alfred.twl2}
    <out_dir>/MANIFEST.json

so the unmodified ``alfworld.agents.environment.AlfredTWEnv`` loads either one
(``write_alfworld_config`` returns its config).

``alfworld/embedded`` builds small rooms ("layouts": a scene number and a set of receptacles at
fixed locations) the way ALFRED splits its data: ``train`` and ``valid_seen`` share layouts
(``valid_seen`` holds new task instances in known rooms), ``valid_unseen`` uses new layouts. Every
game is confirmed solvable by TextWorld's PDDL engine (Fast Downward plan through ALFWorld's
wrappers) and stores that plan as its ``walkthrough``.
"""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
import json
import logging
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro import io as rio
from repro.envs.alfworld import TASK_TYPES
from repro.registry import DATASETS

log = logging.getLogger(__name__)

SPLITS = ("train", "valid_seen", "valid_unseen")

EMBEDDED_DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "n_layouts_seen": 8,  # rooms shared by train and valid_seen
    "n_layouts_unseen": 4,  # rooms only in valid_unseen
    "receptacles_min": 2,  # kitchens always hold their 4 required receptacles
    "receptacles_max": 4,
    "objects_min": 1,
    "objects_max": 2,
    "games": {"train": 200, "valid_seen": 32, "valid_unseen": 32},
    "task_types": [1, 2, 3, 4, 5, 6],
    "num_workers": 2,  # processes confirming solvability with the planner
}

# --------------------------------------------------------------------------------------------
# Catalogue (class names follow AI2-THOR; properties follow alfworld.gen.constants)
# --------------------------------------------------------------------------------------------

#: Room templates. ``required`` receptacles make the room's task types possible (a sink for
#: cleaning, microwave for heating, fridge for cooling, a desk/side table for the desk lamp);
#: ``optional`` may repeat a class (several cabinets), as real rooms do. Scene numbers follow
#: ALFRED (kitchens 1-30, living rooms 201-230, bedrooms 301-330, bathrooms 401-430).
ROOMS: dict[str, dict[str, Any]] = {
    "kitchen": {
        "scenes": range(1, 31),
        "required": ["CounterTop", "Fridge", "Microwave", "SinkBasin"],
        "optional": ["Cabinet", "Cabinet", "Drawer", "DiningTable", "Shelf", "GarbageCan",
                     "StoveBurner", "CoffeeMachine"],
        "objects": ["Apple", "Bread", "Bowl", "Cup", "Egg", "Mug", "Plate", "Potato", "Tomato",
                    "Lettuce", "Pan", "Pot", "Spatula", "Fork", "Knife", "Spoon", "Ladle",
                    "DishSponge", "WineBottle", "SaltShaker", "PepperShaker", "Kettle"],
    },
    "bedroom": {
        "scenes": range(301, 331),
        "required": ["Desk"],
        "optional": ["Bed", "Dresser", "Drawer", "Drawer", "Shelf", "SideTable", "GarbageCan",
                     "Safe", "LaundryHamper"],
        "objects": ["Book", "CellPhone", "CreditCard", "KeyChain", "Laptop", "Pillow",
                    "AlarmClock", "CD", "Pen", "Pencil", "Mug", "Bowl", "Watch", "BaseballBat",
                    "TennisRacket", "BasketBall", "Cloth"],
    },
    "livingroom": {
        "scenes": range(201, 231),
        "required": ["SideTable"],
        "optional": ["Sofa", "ArmChair", "CoffeeTable", "Dresser", "Drawer", "Cabinet", "Shelf",
                     "GarbageCan", "TVStand", "Ottoman", "Safe"],
        "objects": ["Book", "CellPhone", "CreditCard", "KeyChain", "RemoteControl", "Laptop",
                    "Newspaper", "Pillow", "Statue", "Vase", "Watch", "TissueBox", "Candle",
                    "Bowl"],
    },
    "bathroom": {
        "scenes": range(401, 431),
        "required": ["SinkBasin", "CounterTop"],
        "optional": ["Cabinet", "Cabinet", "Drawer", "Toilet", "GarbageCan", "BathtubBasin",
                     "TowelHolder", "HandTowelHolder", "ToiletPaperHanger"],
        "objects": ["SoapBar", "SoapBottle", "Cloth", "HandTowel", "ToiletPaper", "SprayBottle",
                    "Candle", "DishSponge", "TissueBox", "Plunger"],
    },
}
#: Cycling room types guarantees every task type once a split has >= 2 layouts.
ROOM_CYCLE = ("kitchen", "bedroom", "livingroom", "bathroom")

# Object properties (a class-level choice, identical in every game).
CLEANABLE = {"Apple", "Bowl", "ButterKnife", "Cloth", "Cup", "DishSponge", "Egg", "Fork", "Kettle",
             "Knife", "Ladle", "Lettuce", "Mug", "Pan", "Plate", "Pot", "Potato", "SoapBar",
             "Spatula", "Spoon", "Tomato", "HandTowel"}
HEATABLE = {"Apple", "Bread", "Cup", "Egg", "Mug", "Plate", "Potato", "Tomato"}
COOLABLE = {"Apple", "Bowl", "Bread", "Cup", "Egg", "Lettuce", "Mug", "Pan", "Plate", "Pot",
            "Potato", "Tomato", "WineBottle"}
SLICEABLE = {"Apple", "Bread", "Lettuce", "Potato", "Tomato"}
RECEPTACLE_OBJECTS = {"Bowl", "Cup", "Mug", "Pan", "Plate", "Pot"}
OPENABLE = {"Fridge", "Cabinet", "Microwave", "Drawer", "Safe", "Box"}
LAMP = "DeskLamp"
LAMP_HOLDERS = {"Desk", "SideTable", "Dresser"}
#: Appliance each task type needs, which is also never its goal receptacle.
APPLIANCE = {3: "SinkBasin", 4: "Microwave", 5: "Fridge"}
#: Goal receptacles are drawn from the receptacles that can hold the object, except these.
#: SideTable: ``alfworld.gen.constants.OBJECTS`` misspells it (``'SideTable' 'TeddyBear'`` are
#: concatenated), so the hand-coded expert cannot resolve a SideTable goal and would always fail.
NO_GOAL_RECEPTACLE = {"SideTable"}
#: Class names that are prefixes of one another confuse the expert's string tests
#: ("take pot" matches "take potato 1 ..."); never put both in one game.
CONFLICTS = [{"Pen", "Pencil"}, {"Pot", "Potato"}]
#: Types declared in every problem because the domain names them in action preconditions.
DOMAIN_OTYPES = {"KnifeType", "ButterKnifeType"}
DOMAIN_RTYPES = {"SinkBasinType", "MicrowaveType", "FridgeType"}
BASINS = {"SinkBasin": "Sink", "BathtubBasin": "Bathtub"}

# --------------------------------------------------------------------------------------------
# THOR id conventions
# --------------------------------------------------------------------------------------------

_MANGLE = (("-", "_minus_"), ("|", "_bar_"), ("+", "_plus_"), (".", "_dot_"), (",", "_comma_"))


def mangle(thor_id: str) -> str:
    """THOR id -> PDDL name (``Mug|-02.10|...`` -> ``Mug_bar__minus_02_dot_10_bar_...``)."""
    for a, b in _MANGLE:
        thor_id = thor_id.replace(a, b)
    return thor_id


def thor_id(cls: str, xyz: tuple[float, float, float]) -> str:
    """THOR object id. Basins follow THOR's form ``Sink|x|y|z|SinkBasin`` so ALFWorld's
    demangler displays ``sinkbasin 1`` (a naive ``SinkBasin|x|y|z`` shows ``sinkbasinbasin 1``).
    """
    coords = "|".join(f"{v:+06.2f}" for v in xyz)
    if cls in BASINS:
        return f"{BASINS[cls]}|{coords}|{cls}"
    return f"{cls}|{coords}"


def location_name(loc: tuple[int, int, int, int]) -> str:
    """``loc|x|z|rotation|horizon`` mangled, e.g. ``loc_bar__minus_5_bar_3_bar_1_bar_30``."""
    return mangle("loc|" + "|".join(str(v) for v in loc))


# --------------------------------------------------------------------------------------------
# Layouts and task instances
# --------------------------------------------------------------------------------------------


@dataclass
class Receptacle:
    cls: str
    name: str  # mangled PDDL name
    loc: str  # mangled location name
    xyz: tuple[float, float, float]


@dataclass
class Layout:
    """A room: scene number, room type and receptacles at fixed locations."""

    scene: int
    room: str
    receptacles: list[Receptacle]
    used_locs: set = field(default_factory=set)

    def classes(self) -> list[str]:
        return sorted({r.cls for r in self.receptacles})

    def supports(self, task_type: int) -> bool:
        classes = set(self.classes())
        if task_type in APPLIANCE:
            return APPLIANCE[task_type] in classes
        if task_type == 2:
            return bool(classes & LAMP_HOLDERS)
        return True

    def to_json(self) -> dict:
        return {"scene": self.scene, "room": self.room,
                "receptacles": [{"class": r.cls, "name": r.name, "location": r.loc}
                                for r in self.receptacles]}


@dataclass
class Game:
    """One task instance in one layout, before it is written to disk."""

    split: str
    layout: Layout
    task_type: int
    obj: str
    recep: str  # goal receptacle class ("" for look_at_obj_in_light)
    toggle: str  # toggle target class (DeskLamp) or ""
    objects: list[tuple[str, str, Receptacle]]  # (class, mangled name, container)
    agent_loc: str
    goal_text: str
    trial: str

    @property
    def task_dir(self) -> str:
        slot = self.toggle if self.task_type == 2 else self.recep
        return f"{TASK_TYPES[self.task_type]}-{self.obj}-None-{slot}-{self.layout.scene}"


def _val_receptacles() -> dict[str, set[str]]:
    import alfworld.gen.constants as constants  # noqa: PLC0415 (alfworld creates $ALFWORLD_DATA)

    return {r: set(objs) for r, objs in constants.VAL_RECEPTACLE_OBJECTS.items()}


def _check_catalogue() -> None:
    """Every class must be known to ALFWorld (the expert indexes its tables by class)."""
    import alfworld.gen.constants as constants  # noqa: PLC0415

    objects = set(constants.OBJECTS_SINGULAR)
    receptacles = {r.lower() for r in constants.RECEPTACLES}
    for room in ROOMS.values():
        for cls in room["objects"] + [LAMP]:
            if cls.lower() not in objects:
                raise AssertionError(f"{cls} is not an ALFWorld object class")
        for cls in room["required"] + room["optional"]:
            if cls.lower() not in receptacles:
                raise AssertionError(f"{cls} is not an ALFWorld receptacle class")


def _rand_loc(rng: random.Random, used: set) -> tuple[int, int, int, int]:
    while True:
        loc = (rng.randint(-12, 12), rng.randint(-12, 12), rng.randint(0, 3),
               rng.choice((-30, 0, 15, 30, 45, 60)))
        if loc not in used:
            used.add(loc)
            return loc


def _rand_xyz(rng: random.Random, used: set, base=None) -> tuple[float, float, float]:
    while True:
        if base is None:
            xyz = (rng.uniform(-4, 4), rng.uniform(0, 2), rng.uniform(-4, 4))
        else:
            xyz = tuple(b + rng.uniform(-0.4, 0.4) for b in base)
        xyz = tuple(round(v, 2) for v in xyz)
        if xyz not in used:
            used.add(xyz)
            return xyz


def make_layouts(rng: random.Random, n: int, scenes_taken: set, rmin: int,
                 rmax: int) -> list[Layout]:
    """``n`` rooms cycling through the room types, with fresh scene numbers."""
    layouts = []
    for i in range(n):
        room = ROOM_CYCLE[i % len(ROOM_CYCLE)]
        spec = ROOMS[room]
        scene = rng.choice([s for s in spec["scenes"] if s not in scenes_taken])
        scenes_taken.add(scene)
        k = max(len(spec["required"]), rng.randint(rmin, rmax))
        extra = rng.sample(spec["optional"], min(k - len(spec["required"]), len(spec["optional"])))
        classes = sorted(spec["required"] + extra)
        used_loc: set = set()
        used_xyz: set = set()
        receps = []
        for cls in classes:
            xyz = _rand_xyz(rng, used_xyz)
            receps.append(Receptacle(cls, mangle(thor_id(cls, xyz)),
                                     location_name(_rand_loc(rng, used_loc)), xyz))
        layouts.append(Layout(scene, room, receps, used_loc))
    return layouts


def _conflicts(cls: str, chosen: set[str]) -> bool:
    return any(cls in pair and (pair - {cls}) & chosen for pair in CONFLICTS)


def make_game(rng: random.Random, split: str, layout: Layout, task_type: int, params: dict,
              val: dict[str, set[str]]) -> Game | None:
    """One task instance of ``task_type`` in ``layout``; ``None`` if the room cannot host it."""
    receps = layout.receptacles
    holders = lambda cls: [r for r in receps if cls in val.get(r.cls, ())]  # noqa: E731
    room_objs = ROOMS[layout.room]["objects"]
    candidates = {1: room_objs, 2: room_objs, 3: [o for o in room_objs if o in CLEANABLE],
                  4: [o for o in room_objs if o in HEATABLE],
                  5: [o for o in room_objs if o in COOLABLE], 6: room_objs}[task_type]
    candidates = list(candidates)
    rng.shuffle(candidates)
    for obj in candidates:
        toggle, recep = "", ""
        if task_type == 2:
            sources = holders(obj)
            lamp_spots = [r for r in receps if r.cls in LAMP_HOLDERS]
            if not sources or not lamp_spots:
                continue
            toggle = LAMP
        else:
            goal_classes = sorted({r.cls for r in holders(obj)} - NO_GOAL_RECEPTACLE
                                  - {APPLIANCE.get(task_type, "")})
            rng.shuffle(goal_classes)
            for g in goal_classes:
                if any(r.cls != g for r in holders(obj)):
                    recep = g
                    break
            if not recep:
                continue
            sources = [r for r in holders(obj) if r.cls != recep]
        n_targets = 2 if task_type == 6 else 1
        n_required = n_targets + (1 if task_type == 2 else 0)
        n_objects = max(n_required, rng.randint(params["objects_min"], params["objects_max"]))
        used_xyz: set = set()
        objects = []
        for _ in range(n_targets):
            src = rng.choice(sources)
            xyz = _rand_xyz(rng, used_xyz, src.xyz)
            objects.append((obj, mangle(thor_id(obj, xyz)), src))
        if task_type == 2:
            src = rng.choice([r for r in receps if r.cls in LAMP_HOLDERS])
            xyz = _rand_xyz(rng, used_xyz, src.xyz)
            objects.append((LAMP, mangle(thor_id(LAMP, xyz)), src))
        chosen = {obj}
        distractors = [o for o in room_objs if o != obj and holders(o)]
        rng.shuffle(distractors)
        for d in distractors:
            if len(objects) >= n_objects:
                break
            if _conflicts(d, chosen):
                continue
            chosen.add(d)
            src = rng.choice(holders(d))
            xyz = _rand_xyz(rng, used_xyz, src.xyz)
            objects.append((d, mangle(thor_id(d, xyz)), src))
        agent_loc = location_name(_rand_loc(rng, set(layout.used_locs)))
        # Goal sentence: ALFWorld's own templates (goal_library), chosen with our seeded rng
        # instead of add_task_to_grammar's global `random` (reference §1.3 pitfall).
        import alfworld.gen.goal_library as glib  # noqa: PLC0415

        template = rng.choice(glib.gdict[TASK_TYPES[task_type]]["templates"])
        goal_text = template.format(obj=obj.lower(), recep=recep.lower(), toggle=toggle.lower(),
                                    mrecep="")
        trial = f"trial_T{20190000 + rng.randint(0, 9999):08d}_{rng.randint(0, 999999):06d}"
        return Game(split, layout, task_type, obj, recep, toggle, objects, agent_loc, goal_text,
                    trial)
    return None


def problem_pddl(game: Game, val: dict[str, set[str]]) -> str:
    """The ``initial_state.pddl`` text (objects, init facts, goal from ALFWorld's goal library)."""
    import alfworld.gen.goal_library as glib  # noqa: PLC0415

    receps = game.layout.receptacles
    otypes = sorted({c for c, _, _ in game.objects})
    rtypes = sorted({r.cls for r in receps})
    lines = [f"(define (problem plan_{game.trial})", "    (:domain alfred)", "    (:objects",
             "        agent1 - agent"]
    lines += [f"        {t} - otype" for t in sorted({f"{c}Type" for c in otypes} | DOMAIN_OTYPES)]
    lines += [f"        {t} - rtype" for t in sorted({f"{c}Type" for c in rtypes} | DOMAIN_RTYPES)]
    lines += [f"        {name} - object" for _, name, _ in sorted(game.objects, key=lambda o: o[1])]
    lines += [f"        {r.name} - receptacle" for r in sorted(receps, key=lambda r: r.name)]
    locs = sorted({r.loc for r in receps} | {game.agent_loc})
    lines += [f"        {loc} - location" for loc in locs]
    lines += ["        )", "    (:init"]
    lines.append(f"        (atLocation agent1 {game.agent_loc})")
    for r in sorted(receps, key=lambda r: r.name):
        lines.append(f"        (receptacleType {r.name} {r.cls}Type)")
        lines.append(f"        (receptacleAtLocation {r.name} {r.loc})")
        if r.cls in OPENABLE:
            lines.append(f"        (openable {r.name})")
    for cls, name, src in sorted(game.objects, key=lambda o: o[1]):
        lines.append(f"        (objectType {name} {cls}Type)")
        lines.append(f"        (inReceptacle {name} {src.name})")
        lines.append(f"        (objectAtLocation {name} {src.loc})")
        if cls == LAMP:
            lines.append(f"        (toggleable {name})")
            continue
        lines.append(f"        (pickupable {name})")
        for prop, members in (("cleanable", CLEANABLE), ("heatable", HEATABLE),
                              ("coolable", COOLABLE), ("sliceable", SLICEABLE),
                              ("isReceptacleObject", RECEPTACLE_OBJECTS)):
            if cls in members:
                lines.append(f"        ({prop} {name})")
    for rt in rtypes:
        for ot in otypes:
            if ot in val.get(rt, ()):
                lines.append(f"        (canContain {rt}Type {ot}Type)")
    lines.append("        )")
    goal = glib.gdict[TASK_TYPES[game.task_type]]["pddl"].format(
        obj=game.obj, recep=game.recep, toggle=game.toggle, mrecep="").replace("#", "-")
    return "\n".join(lines) + "\n" + goal.rstrip() + "\n"


def traj_data(game: Game) -> dict:
    """The parts of ALFRED's ``traj_data.json`` that ALFWorld's text env and expert read."""
    return {
        "task_id": game.trial,
        "task_type": TASK_TYPES[game.task_type],
        "pddl_params": {"object_target": game.obj, "parent_target": game.recep,
                        "mrecep_target": "", "toggle_target": game.toggle,
                        "object_sliced": False},
        "scene": {"floor_plan": f"FloorPlan{game.layout.scene}", "scene_num": game.layout.scene},
        "turk_annotations": {"anns": [{"task_desc": game.goal_text, "high_descs": [],
                                       "votes": [1, 1, 1]}]},
        "repro": {"generator": "alfworld/embedded", "room": game.layout.room,
                  "objects": [[c, n, r.name] for c, n, r in game.objects]},
    }


# --------------------------------------------------------------------------------------------
# Solvability (TextWorld PDDL engine + ALFWorld wrappers, planner walkthrough)
# --------------------------------------------------------------------------------------------

_PLANNER = None


def _planner_env():
    """The PDDL engine wrapped like AlfredTWEnv's (demangled names), requesting the planner's plan."""
    global _PLANNER
    if _PLANNER is None:
        import textworld  # noqa: PLC0415
        from alfworld.agents.environment.alfred_tw_env import (  # noqa: PLC0415
            AlfredDemangler, AlfredInfos)
        from textworld.envs.wrappers import Filter  # noqa: PLC0415

        from repro.envs.alfworld import pddl_engine  # noqa: PLC0415

        infos = textworld.EnvInfos(won=True, admissible_commands=True, policy_commands=True,
                                   extras=["gamefile"])
        env = pddl_engine(infos)
        for wrapper in (AlfredDemangler(shuffle=False), AlfredInfos, Filter):
            env = wrapper(env)
        _PLANNER = (env, infos)
    return _PLANNER


def solve_game(gamefile: str) -> list[str] | None:
    """Planner walkthrough of ``gamefile`` replayed to a win, or ``None`` if unsolvable."""
    env, infos = _planner_env()
    env.load(gamefile)
    infos.policy_commands = True
    try:
        _, state = env.reset()
        plan = list(state.get("policy_commands") or [])
        if not plan or state["won"]:
            return None
        infos.policy_commands = False  # replanning after every step is slow and unneeded
        won = False
        for cmd in plan:
            if cmd not in state["admissible_commands"]:
                return None
            _, _, done, state = env.step(cmd)
            won = bool(state["won"])
            if done:
                break
        return plan if won else None
    finally:
        infos.policy_commands = True


def _solve_many(gamefiles: list[str]) -> list[list[str] | None]:
    import multiprocessing as mp  # noqa: PLC0415

    if mp.parent_process() is not None:  # a pool worker of ours: load+reset translate once
        from repro.envs.alfworld import memoize_engine  # noqa: PLC0415

        memoize_engine()
    return [solve_game(g) for g in gamefiles]


# --------------------------------------------------------------------------------------------
# Embedded generator
# --------------------------------------------------------------------------------------------


def _alfworld_data_files() -> tuple[Path, Path]:
    """alfred.pddl / alfred.twl2 shipped in the alfworld wheel (found without importing it)."""
    spec = importlib.util.find_spec("alfworld")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("alfworld is not installed (pip install alfworld==0.4.2)")
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    return data / "alfred.pddl", data / "alfred.twl2"


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("alfworld", "textworld", "fast-downward-textworld"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "missing"
    return out


def _resolve_params(params: dict) -> dict:
    p = copy.deepcopy(EMBEDDED_DEFAULTS)
    for k, v in (params or {}).items():
        if k == "games" and isinstance(v, dict):
            p["games"].update(v)
        else:
            p[k] = v
    for k in ("games_train", "games_valid_seen", "games_valid_unseen"):  # flat aliases
        if k in p:
            p["games"][k[len("games_"):]] = int(p.pop(k))
    p["task_types"] = sorted(int(t) for t in p["task_types"])
    if not set(p["task_types"]) <= set(TASK_TYPES):
        raise ValueError(f"task_types must be within 1..6, got {p['task_types']}")
    if not 1 <= p["receptacles_min"] <= p["receptacles_max"]:
        raise ValueError("need 1 <= receptacles_min <= receptacles_max")
    if not 1 <= p["objects_min"] <= p["objects_max"]:
        raise ValueError("need 1 <= objects_min <= objects_max")
    if p["n_layouts_seen"] < 1 or p["n_layouts_unseen"] < 1:
        raise ValueError("need at least one seen and one unseen layout")
    return p


def _sample_split(split: str, n: int, layouts: list[Layout], p: dict, val, seed,
                  avoid_dirs: set[str], avoid_combos: set, used_trials: set,
                  attempt_base: int = 0, index_offset: int = 0) -> list[Game]:
    """``n`` games round-robin over the task types, each in a layout that can host it.

    ``avoid_dirs``/``avoid_combos`` are task directories / (type, object, receptacle) combos to
    avoid when possible (new task instances for valid_seen, new combos for valid_unseen).
    """
    types = [t for t in p["task_types"] if any(lay.supports(t) for lay in layouts)]
    if not types:
        raise ValueError(f"no {split} layout supports any of task types {p['task_types']}")
    if len(types) < len(p["task_types"]) and index_offset == 0:
        log.warning("%s: no layout hosts task types %s (rooms cycle %s; use >= 2 layouts); "
                    "skipping them", split, sorted(set(p["task_types"]) - set(types)),
                    ", ".join(ROOM_CYCLE))
    order = random.Random(f"{seed}/{split}/types").sample(types, len(types))
    games = []
    for i in range(index_offset, index_offset + n):
        tt = order[i % len(order)]
        hosts = [lay for lay in layouts if lay.supports(tt)]
        best = None
        for attempt in range(attempt_base, attempt_base + 40):
            rng = random.Random(f"{seed}/{split}/{i}/{attempt}")
            g = make_game(rng, split, rng.choice(hosts), tt, p, val)
            if g is None or g.trial in used_trials:
                continue
            best = best or g
            combo = (g.task_type, g.obj, g.recep or g.toggle)
            if g.task_dir not in avoid_dirs and combo not in avoid_combos:
                best = g
                break
        if best is None:
            raise RuntimeError(f"could not sample a {split} game of task type {tt}")
        used_trials.add(best.trial)
        games.append(best)
    return games


def _write_game(split_dir: Path, g: Game, val, domain: str, twl2: str, walkthrough) -> Path:
    d = split_dir / g.task_dir / g.trial
    d.mkdir(parents=True, exist_ok=True)
    problem = problem_pddl(g, val)
    (d / "initial_state.pddl").write_text(problem, encoding="utf-8")
    with open(d / "traj_data.json", "w", encoding="utf-8") as fh:
        json.dump(traj_data(g), fh, indent=2, sort_keys=True)
    game = {"pddl_domain": domain, "grammar": twl2.replace("UNKNOWN GOAL", g.goal_text),
            "pddl_problem": problem, "solvable": walkthrough is not None,
            "walkthrough": walkthrough}
    with open(d / "game.tw-pddl", "w", encoding="utf-8") as fh:
        json.dump(game, fh)
    return d / "game.tw-pddl"


def _confirm(gamefiles: list[str], workers: int) -> list[list[str] | None]:
    if workers <= 1 or len(gamefiles) < 8:
        return _solve_many(gamefiles)
    import multiprocessing as mp  # noqa: PLC0415

    chunks = [gamefiles[i::workers] for i in range(workers)]
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(workers) as pool:
        parts = pool.map(_solve_many, chunks)
    out: list = [None] * len(gamefiles)
    for w, part in enumerate(parts):
        out[w::workers] = part
    return out


@DATASETS.register("alfworld/embedded")
def generate_embedded(out_dir: Path, params: dict) -> None:
    """Generate small ALFWorld games deterministically from ``params["seed"]`` into ``out_dir``.

    Params (defaults in ``EMBEDDED_DEFAULTS``): seed, n_layouts_seen, n_layouts_unseen,
    receptacles_min/max (3-6), objects_min/max (1-4), games {train, valid_seen, valid_unseen},
    task_types (ids 1-6), num_workers. Every game is confirmed solvable by the planner and
    carries its plan as ``walkthrough``; unsolvable samples are replaced by re-sampling.
    """
    t0 = time.perf_counter()
    p = _resolve_params(params)
    _check_catalogue()
    val = _val_receptacles()
    seed = p["seed"]
    pddl_path, twl2_path = _alfworld_data_files()
    domain = pddl_path.read_text(encoding="utf-8")
    twl2 = twl2_path.read_text(encoding="utf-8")

    layout_rng = random.Random(f"{seed}/layouts")
    scenes: set = set()
    rmin, rmax = p["receptacles_min"], p["receptacles_max"]
    seen = make_layouts(layout_rng, p["n_layouts_seen"], scenes, rmin, rmax)
    unseen = make_layouts(layout_rng, p["n_layouts_unseen"], scenes, rmin, rmax)

    out_dir = Path(out_dir)
    with rio.atomic_dir(out_dir) as tmp:
        root = tmp / "json_2.1.1"
        counts: dict[str, Any] = {}
        train_dirs: set[str] = set()
        train_combos: set = set()
        for split in SPLITS:
            layouts = unseen if split == "valid_unseen" else seen
            avoid_dirs = train_dirs if split == "valid_seen" else set()
            avoid_combos = train_combos if split == "valid_unseen" else set()
            n = int(p["games"][split])
            used_trials: set[str] = set()
            games = _sample_split(split, n, layouts, p, val, seed, avoid_dirs, avoid_combos,
                                  used_trials)
            pending = list(range(n))
            final: list = [None] * n
            files: list = [None] * n
            for round_ in range(10):
                for i in pending:
                    files[i] = _write_game(root / split, games[i], val, domain, twl2, [])
                plans = _confirm([str(files[i]) for i in pending], p["num_workers"])
                retry = []
                for i, plan in zip(pending, plans):
                    if plan is None:
                        shutil.rmtree(files[i].parent)
                        if not any(files[i].parent.parent.iterdir()):
                            files[i].parent.parent.rmdir()
                        log.info("unsolvable %s; re-sampling", files[i].parent.name)
                        retry.append(i)
                    else:
                        final[i] = (games[i], plan)
                if not retry:
                    break
                for i in retry:
                    games[i] = _sample_split(split, 1, layouts, p, val, seed, avoid_dirs,
                                             avoid_combos, used_trials,
                                             attempt_base=100 * (round_ + 1), index_offset=i)[0]
                pending = retry
            else:
                raise RuntimeError(f"{split}: {len(pending)} games stayed unsolvable")
            per_type: dict[str, int] = {}
            for g, plan in final:
                _write_game(root / split, g, val, domain, twl2, plan)
                per_type[TASK_TYPES[g.task_type]] = per_type.get(TASK_TYPES[g.task_type], 0) + 1
                if split == "train":
                    train_dirs.add(g.task_dir)
                    train_combos.add((g.task_type, g.obj, g.recep or g.toggle))
            counts[split] = {"games": n, "per_task_type": dict(sorted(per_type.items())),
                             "scenes": sorted({lay.scene for lay in layouts})}
        logic = tmp / "logic"
        logic.mkdir()
        shutil.copyfile(pddl_path, logic / "alfred.pddl")
        shutil.copyfile(twl2_path, logic / "alfred.twl2")
        manifest = {
            "dataset": "alfworld/embedded",
            "source": "generated by repro.data.alfworld.generate_embedded",
            "license": "MIT (ALFWorld domain, grammar and goal templates; "
                       "github.com/alfworld/alfworld)",
            "params": p,
            "versions": _versions(),
            "counts": counts,
            "layouts": {"seen": [lay.to_json() for lay in seen],
                        "unseen": [lay.to_json() for lay in unseen]},
            "files": rio.sha256_tree(tmp),
        }
        rio.write_json(tmp / "MANIFEST.json", manifest)
    log.info("alfworld/embedded: %s games in %.1f s -> %s",
             {s: c["games"] for s, c in counts.items()}, time.perf_counter() - t0, out_dir)


# --------------------------------------------------------------------------------------------
# Paper scale: the release archives
# --------------------------------------------------------------------------------------------

RELEASE_BASE_URL = "https://github.com/alfworld/alfworld/releases/download"
#: Archives named by the alfworld 0.4.2 wheel's downloader (reference/environments.md §2).
#: The MaskRCNN detector is not needed by the text env and is not fetched.
RELEASE_ARCHIVES = (
    "0.2.2/json_2.1.1_json.zip",  # traj_data.json
    "0.2.2/json_2.1.1_pddl.zip",  # initial_state.pddl
    "0.4.0/json_2.1.2_tw-pddl.zip",  # game.tw-pddl (2.1.2 grammar, matches alfworld 0.4.2)
)


@DATASETS.register("alfworld/full")
def fetch_full(out_dir: Path, params: dict) -> None:
    """Download and unpack ALFWorld's release data into ``out_dir`` (atomic, resumable).

    Params: ``base_url`` (default GitHub releases; ``file://`` or ``http://`` mirrors work),
    ``archives`` (``{name: release tag}`` or a list of ``"<tag>/<name>"`` paths under
    base_url; default ``RELEASE_ARCHIVES``), ``sha256`` ({archive file name: hex digest};
    a mismatch raises ``ValueError`` and leaves nothing behind), ``download_dir`` (where
    archives and ``.part`` files live between attempts; default a hidden sibling of out_dir),
    ``keep_archives`` (False), ``hash_files`` (True: per-file digests in MANIFEST.json).
    """
    from repro.data.download import download, unpack_zip  # noqa: PLC0415

    params = dict(params or {})
    out_dir = Path(out_dir)
    base = str(params.get("base_url", RELEASE_BASE_URL)).rstrip("/")
    archives = params.get("archives", RELEASE_ARCHIVES)
    if isinstance(archives, dict):  # {archive name: release tag}, as in config/studies/hgpo.yaml
        archives = [f"{tag}/{name}" for name, tag in archives.items()]
    archives = [str(a) for a in archives]
    expected = dict(params.get("sha256") or {})
    dl_dir = Path(params.get("download_dir") or out_dir.parent / f".{out_dir.name}.downloads")
    dl_dir_existed = dl_dir.exists()
    records = {}
    try:
        for rel in archives:
            name = rel.rsplit("/", 1)[-1]
            url = f"{base}/{rel}"
            dest = dl_dir / name
            if dest.exists():
                digest = rio.sha256_file(dest)
                if name in expected and digest != expected[name].lower():
                    dest.unlink()
                    raise ValueError(f"sha256 mismatch for {name}: expected "
                                     f"{expected[name].lower()}, got {digest}")
            else:
                log.info("downloading %s", url)
                digest = download(url, dest, expected_sha256=expected.get(name))
            records[name] = {"url": url, "sha256": digest, "bytes": dest.stat().st_size}
    except ValueError:
        # A digest mismatch is a wrong or tampered source, not a network hiccup: remove what
        # this call created (the bad file is already gone) so nothing half-fetched remains.
        if not dl_dir_existed:
            shutil.rmtree(dl_dir, ignore_errors=True)
        raise

    pddl_path, twl2_path = _alfworld_data_files()
    with rio.atomic_dir(out_dir) as tmp:
        for name in records:
            log.info("unpacking %s", name)
            unpack_zip(dl_dir / name, tmp)
        if not (tmp / "json_2.1.1").is_dir():
            raise ValueError(f"archives {sorted(records)} contain no json_2.1.1/ folder")
        logic = tmp / "logic"
        logic.mkdir(exist_ok=True)
        shutil.copyfile(pddl_path, logic / "alfred.pddl")
        shutil.copyfile(twl2_path, logic / "alfred.twl2")
        counts = {}
        for split in SPLITS:
            d = tmp / "json_2.1.1" / split
            counts[split] = sum(1 for _ in d.rglob("traj_data.json")) if d.is_dir() else 0
        manifest = {
            "dataset": "alfworld/full",
            "source": base,
            "license": "MIT (ALFWorld / ALFRED, github.com/alfworld/alfworld)",
            "archives": records,
            "versions": _versions(),
            "counts": counts,
        }
        if params.get("hash_files", True):
            manifest["files"] = rio.sha256_tree(tmp)
        rio.write_json(tmp / "MANIFEST.json", manifest)
    if not params.get("keep_archives", False):
        shutil.rmtree(dl_dir, ignore_errors=True)
    log.info("alfworld/full: %s -> %s", counts, out_dir)


# --------------------------------------------------------------------------------------------
# AlfredTWEnv configuration
# --------------------------------------------------------------------------------------------


def write_alfworld_config(data_root: Path, path: str | os.PathLike | None = None) -> dict:
    """AlfredTWEnv's config (the repository's ``configs/base_config.yaml``) for ``data_root``.

    Dataset paths point at ``data_root/json_2.1.1/{train,valid_seen,valid_unseen}`` and the logic
    files at ``data_root/logic``. When ``path`` is given the config is also written there as YAML
    (atomically).
    """
    root = Path(data_root).resolve()
    js = root / "json_2.1.1"
    cfg = {
        "dataset": {
            "data_path": str(js / "train"),
            "eval_id_data_path": str(js / "valid_seen"),
            "eval_ood_data_path": str(js / "valid_unseen"),
            "num_train_games": -1,
            "num_eval_games": -1,
        },
        "logic": {"domain": str(root / "logic" / "alfred.pddl"),
                  "grammar": str(root / "logic" / "alfred.twl2")},
        "env": {
            "type": "AlfredTWEnv",
            "domain_randomization": False,
            "task_types": [1, 2, 3, 4, 5, 6],
            "expert_timeout_steps": 150,
            "expert_type": "handcoded",
            "goal_desc_human_anns_prob": 0.0,
            "hybrid": {"start_eps": 100000, "thor_prob": 0.5, "eval_mode": "tw"},
            "thor": {"screen_width": 300, "screen_height": 300, "smooth_nav": False,
                     "save_frames_to_disk": False, "save_frames_path": "./videos/"},
        },
        "controller": {"type": "oracle", "debug": False, "load_receps": True},
        "mask_rcnn": {"pretrained_model_path": "$ALFWORLD_DATA/detectors/mrcnn.pth"},
        "general": {
            "random_seed": 42,
            "use_cuda": True,
            "visdom": False,
            "task": "alfred",
            "training_method": "dagger",
            "save_path": "./training/",
            "observation_pool_capacity": 3,
            "hide_init_receptacles": False,
            "training": {"batch_size": 10, "max_episode": 50000, "smoothing_eps": 0.1,
                         "optimizer": {"learning_rate": 0.001, "clip_grad_norm": 5}},
            "evaluate": {"run_eval": True, "batch_size": 10, "env": {"type": "AlfredTWEnv"}},
            "checkpoint": {"report_frequency": 1000, "experiment_tag": "test",
                           "load_pretrained": False, "load_from_tag": "not loading anything"},
            "model": {"encoder_layers": 1, "decoder_layers": 1, "encoder_conv_num": 5,
                      "block_hidden_dim": 64, "n_heads": 1, "dropout": 0.1,
                      "block_dropout": 0.1, "recurrent": True},
        },
        "rl": {
            "action_space": "admissible",
            "max_target_length": 20,
            "beam_width": 10,
            "generate_top_k": 3,
            "training": {"max_nb_steps_per_episode": 50, "learn_start_from_this_episode": 0,
                         "target_net_update_frequency": 500},
            "replay": {"accumulate_reward_from_final": True, "count_reward_lambda": 0.0,
                       "novel_object_reward_lambda": 0.0, "discount_gamma_game_reward": 0.9,
                       "discount_gamma_count_reward": 0.5,
                       "discount_gamma_novel_object_reward": 0.5,
                       "replay_memory_capacity": 500000, "replay_memory_priority_fraction": 0.5,
                       "update_per_k_game_steps": 5, "replay_batch_size": 64, "multi_step": 3,
                       "replay_sample_history_length": 4, "replay_sample_update_from": 2},
            "epsilon_greedy": {"noisy_net": False, "epsilon_anneal_episodes": 1000,
                               "epsilon_anneal_from": 0.3, "epsilon_anneal_to": 0.1},
        },
        "dagger": {
            "action_space": "generation",
            "max_target_length": 20,
            "beam_width": 10,
            "generate_top_k": 5,
            "unstick_by_beam_search": False,
            "training": {"max_nb_steps_per_episode": 50},
            "fraction_assist": {"fraction_assist_anneal_episodes": 50000,
                                "fraction_assist_anneal_from": 1.0,
                                "fraction_assist_anneal_to": 0.01},
            "fraction_random": {"fraction_random_anneal_episodes": 0,
                                "fraction_random_anneal_from": 0.0,
                                "fraction_random_anneal_to": 0.0},
            "replay": {"replay_memory_capacity": 500000, "update_per_k_game_steps": 5,
                       "replay_batch_size": 64, "replay_sample_history_length": 4,
                       "replay_sample_update_from": 2},
        },
        "vision_dagger": {"model_type": "resnet", "resnet_fc_dim": 64,
                          "maskrcnn_top_k_boxes": 10, "use_exploration_frame_feats": False,
                          "sequence_aggregation_method": "average"},
    }
    if path is not None:
        import yaml  # noqa: PLC0415

        rio.write_text(path, yaml.safe_dump(cfg, sort_keys=False))
    return cfg
