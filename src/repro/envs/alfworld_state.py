"""World-state keys for ALFWorld: what the text observation leaves out (GraphGPO, agentic-rl.md §3.5.4).

ALFWorld's observation describes what the last action showed ("You arrive at sinkbasin 1. On the
sinkbasin 1, you see a pot 1."), not the world: arriving at the sink with a dirty and with a
cleaned tomato in hand reads the same. A state graph keyed on that text merges different world
states into one node and so misplaces distances. :class:`AlfworldStateTracker` follows the
episode's actions and keeps what changes the world:

- the agent's location (after ``go to X``),
- the held object (``take O from R``; dropped by ``move/put O to/in/on R``),
- per object: heated, cooled, cleaned, sliced (``heat/cool/clean/slice O with R``),
- where moved objects now are (``move/put O ... R``),

updated only when the action did something (the observation is not "Nothing happens."), and
makes the key ``"{observation} | {location and holding} | {object states} | {admissible, sorted}"``,
the four parts of the released code's key (our own wording of them). Deterministic: the key is a
function of the episode's (action, observation) history and the current observation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

NOTHING = "Nothing happens."
_GO = re.compile(r"^go to (?P<where>.+)$")
_TAKE = re.compile(r"^take (?P<obj>.+?) from (?P<where>.+)$")
_PUT = re.compile(r"^(?:move|put) (?P<obj>.+?) (?:to|in|on|in/on) (?P<where>.+)$")
_PROCESS = re.compile(r"^(?P<verb>heat|cool|clean|slice) (?P<obj>.+?) with (?P<tool>.+)$")
_DONE = {"heat": "heated", "cool": "cooled", "clean": "cleaned", "slice": "sliced"}


@dataclass
class AlfworldState:
    """What one episode has done to its world so far."""

    location: str = "start"
    holding: str | None = None
    processed: dict[str, set[str]] = field(default_factory=dict)  # object -> {"heated", ...}
    moved: dict[str, str] = field(default_factory=dict)  # object -> receptacle it was put in

    def update(self, action: str, observation: str) -> None:
        """Apply ``action`` if it did something (``observation`` is not "Nothing happens.")."""
        if observation.strip().startswith(NOTHING):
            return
        action = action.strip().lower()
        if m := _GO.match(action):
            self.location = m["where"]
        elif m := _TAKE.match(action):
            self.holding = m["obj"]
            self.moved.pop(m["obj"], None)
        elif m := _PUT.match(action):
            self.holding = None if self.holding == m["obj"] else self.holding
            self.moved[m["obj"]] = m["where"]
        elif m := _PROCESS.match(action):
            self.processed.setdefault(m["obj"], set()).add(_DONE[m["verb"]])

    def text(self) -> str:
        where = f"at {self.location}, holding {self.holding or 'nothing'}"
        objects = sorted(set(self.processed) | set(self.moved))
        items = "; ".join(
            f"{o}: " + ",".join(sorted(self.processed.get(o, ()))
                                + ([f"in {self.moved[o]}"] if o in self.moved else []))
            for o in objects)
        return f"{where} | {items}"


class AlfworldStateTracker:
    """State keys of ``n`` episode slots (``repro.registry.STATE_KEYS`` ``alfworld_tracked``)."""

    def __init__(self, n: int) -> None:
        self.states = [AlfworldState() for _ in range(n)]

    def key(self, i: int, observation: str, admissible: list[str]) -> str:
        return f"{observation} | {self.states[i].text()} | {','.join(sorted(admissible))}"

    def update(self, i: int, action: str, observation: str) -> None:
        self.states[i].update(action, observation)
