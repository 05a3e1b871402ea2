"""Typed params of KPO's policy losses (torch-free: the workflow validates them while parsing)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: train_log.csv columns the ``kpo`` loss adds (its ``columns`` registry meta)
KPO_COLUMNS = ("train/sign_switch_raw", "train/sign_switch_filtered", "train/filtered_abs_mean")


@dataclass(frozen=True)
class GSPOParams:
    """``gspo``: sequence-level ratio, clip band as the GSPO paper and KPO's script (§4.5)."""

    clip_ratio_low: float = 3e-4
    clip_ratio_high: float = 4e-4
    loss_agg_mode: Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"] = "seq-mean-token-mean"

    def __post_init__(self) -> None:
        if not (0 < self.clip_ratio_low < 1 and self.clip_ratio_high > 0):
            raise ValueError(f"need 0 < clip_ratio_low < 1 and clip_ratio_high > 0; got "
                             f"{self.clip_ratio_low}, {self.clip_ratio_high}")


@dataclass(frozen=True)
class KPOParams(GSPOParams):
    """``kpo`` (verl-kpo ``kpo_qwen3_4b.sh``, agentic-rl.md §4.5): Q = 1e-6, R = 1, clipped."""

    kalman_q: float = 1e-6     # process noise Q (``kalman_Q``)
    kalman_r: float = 1.0      # observation noise R (``kalman_R``; "V" in §3.7.2)
    clip: bool = True          # ``is_clip``: the clipped objective (KPO-clipped), else KPO-unclipped

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kalman_q <= 0 or self.kalman_r <= 0:
            raise ValueError(f"kalman_q and kalman_r must be > 0; got {self.kalman_q}, {self.kalman_r}")


