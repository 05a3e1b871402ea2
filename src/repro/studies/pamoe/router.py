"""PA-MoE's phase router and its losses (agentic-rl.md §3.8.2-3.8.3).

Once per environment step the router picks which of K LoRA experts writes the whole response.
Its inputs are encodings from the frozen base model (final-layer hidden states, `Enc`): the current
observation's tokens attend to the goal's tokens (goal-conditioned cross-attention, 8 heads, then
a mean over the observation's tokens), an LSTM reads the last L (action, observation) pairs (each
pair mean-pooled), and an MLP head maps both to K logits; p_t = softmax(logits / tau) with tau
annealed from tau_0 to tau_f. Choice: argmax (the paper note) or a sample (the released code while
training). Losses: switching penalty (hard count forward, soft surrogate gradient), load balance,
expert diversity, and the router's REINFORCE term.

Shapes: B rows (steps), d the base model's hidden size, K experts, L history pairs.
"""

from __future__ import annotations

import torch
from torch import nn

from repro.studies.pamoe.params import RouterParams  # noqa: F401  (re-exported)


def temperature(step: int, p: RouterParams) -> float:
    """tau(step) = max(tau_f, tau_0 - (tau_0 - tau_f) * step / T_anneal) (§3.8.3)."""
    return max(p.tau_end, p.tau_start - (p.tau_start - p.tau_end) * step / max(p.anneal_steps, 1))


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 of ``x`` [B, T, d] where ``mask`` [B, T] is true: [B, d] (0 where none)."""
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


class PhaseRouter(nn.Module):
    """Logits over K experts from (observation tokens, goal tokens, history pair encodings)."""

    def __init__(self, hidden_size: int, p: RouterParams) -> None:
        super().__init__()
        heads = p.heads if hidden_size % p.heads == 0 else 1  # deviation: tiny models' d need not divide by 8
        self.attend = nn.MultiheadAttention(hidden_size, heads, batch_first=True)
        self.lstm = nn.LSTM(hidden_size, p.lstm_hidden, num_layers=p.lstm_layers, batch_first=True,
                            dropout=p.dropout if p.lstm_layers > 1 else 0.0)
        self.head = nn.Sequential(nn.Linear(hidden_size + p.lstm_hidden, p.mlp_hidden), nn.LayerNorm(p.mlp_hidden),
                                  nn.ReLU(), nn.Dropout(p.dropout), nn.Linear(p.mlp_hidden, p.experts))

    def forward(self, obs: torch.Tensor, obs_mask: torch.Tensor, goal: torch.Tensor, goal_mask: torch.Tensor,
                history: torch.Tensor, history_len: torch.Tensor) -> torch.Tensor:
        """Logits [B, K]. ``obs`` [B, To, d], ``goal`` [B, Tg, d] (token states, masks [B, T] true
        at real tokens), ``history`` [B, L, d] (pair encodings, left-aligned, ``history_len`` [B]
        real pairs; 0 pairs reads as one zero vector)."""
        aligned, _ = self.attend(obs, goal, goal, key_padding_mask=~goal_mask, need_weights=False)
        o = masked_mean(aligned, obs_mask)                                        # [B, d]
        steps = history_len.clamp_min(1)
        out, _ = self.lstm(history)                                               # [B, L, H]
        h = out[torch.arange(len(out)), steps - 1]                                # last real pair's state [B, H]
        return self.head(torch.cat([o, h], dim=-1))


def probabilities(logits: torch.Tensor, tau: float) -> torch.Tensor:
    """p_t = softmax(logits / tau): [B, K]."""
    return torch.softmax(logits / tau, dim=-1)


def choose(probs: torch.Tensor, how: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """The expert of each row [B]: argmax, or a sample from ``probs``."""
    if how == "argmax":
        return probs.argmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def switching_loss(probs: torch.Tensor, chosen: torch.Tensor, episode: torch.Tensor, coef: float) -> torch.Tensor:
    """lambda_s / (T - 1) * sum_t 1[z_t != z_{t+1}] per episode, averaged over episodes with T >= 2.

    ``probs`` [N, K] and ``chosen`` [N] are chronological within each episode (``episode`` [N]
    ids, rows of one episode contiguous). Straight-through: the value is the hard count, the
    gradient that of the soft surrogate 1 - sum_k p_t^k p_{t+1}^k (§3.8.3)."""
    same = episode[1:] == episode[:-1]                                            # consecutive pairs in one episode
    hard = (chosen[1:] != chosen[:-1]).to(probs.dtype)
    soft = 1.0 - (probs[1:] * probs[:-1]).sum(-1)
    pair = hard + soft - soft.detach()                                            # forward: hard; backward: soft
    ids, counts = torch.unique_consecutive(episode, return_counts=True)
    pair_episode = torch.repeat_interleave(torch.arange(len(ids)), counts)[1:]
    per_episode = torch.zeros(len(ids), dtype=probs.dtype).index_add(0, pair_episode[same], pair[same])
    long = counts >= 2
    if not long.any():
        return probs.sum() * 0.0
    return coef * (per_episode[long] / (counts[long] - 1)).mean()


def balance_loss(probs: torch.Tensor, coef: float) -> torch.Tensor:
    """lambda_bal * sum_k (f_k - 1/K)^2, f_k the mean router probability of expert k [C]."""
    f = probs.mean(0)
    return coef * ((f - 1.0 / probs.shape[1]) ** 2).sum()


def diversity_loss(probs: torch.Tensor, coef: float, margin: float) -> torch.Tensor:
    """Experts whose routing looks alike are pushed apart [C]: for each pair (i, j), with p_i expert
    i's router probabilities over the batch's rows normalised to a distribution, if
    KL(p_i || p_j) < margin add (margin - KL) * mean_rows(P_i * P_j) (their co-activation);
    the mean over pairs, times lambda_div. [I] the released code's exact normalisation of p_i is
    not documented in the reference; this reading is tested by hand."""
    k = probs.shape[1]
    if k < 2:
        return probs.sum() * 0.0
    dist = probs / probs.sum(0, keepdim=True).clamp_min(1e-12)                    # [N, K], columns sum to 1
    logd = dist.clamp_min(1e-12).log()
    kl = (dist.unsqueeze(2) * (logd.unsqueeze(2) - logd.unsqueeze(1))).sum(0)     # [K, K]: KL(p_i || p_j)
    co = (probs.unsqueeze(2) * probs.unsqueeze(1)).mean(0)                        # [K, K]
    i, j = torch.triu_indices(k, k, offset=1)
    pairs = torch.where(kl[i, j] < margin, (margin - kl[i, j]) * co[i, j], torch.zeros_like(co[i, j]))
    return coef * pairs.mean()


def reinforce_loss(probs: torch.Tensor, chosen: torch.Tensor, episode: torch.Tensor,
                   returns: torch.Tensor) -> torch.Tensor:
    """-(sum_t log p(k_t)) * R_traj, averaged over episodes (the released code's router signal) [C].
    ``returns`` [E] per episode in the order episodes first appear in ``episode``."""
    logp = probs.gather(1, chosen.unsqueeze(1)).squeeze(1).clamp_min(1e-12).log()
    ids, counts = torch.unique_consecutive(episode, return_counts=True)
    per_episode = torch.zeros(len(ids), dtype=probs.dtype).index_add(
        0, torch.repeat_interleave(torch.arange(len(ids)), counts), logp)
    return -(per_episode * returns.to(probs.dtype)).mean()
