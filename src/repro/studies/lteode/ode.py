"""A graph neural ODE forecaster, plain, with an LTE penalty, or with LTE-ODE's truncation-error
mask and discrete compensation (other-papers.md §8.2, all [I]: the paper's method section was not
found).

Shapes: B windows, N sensors, d hidden units, L input steps, K horizon steps.

- **Encoder** H_0 = MLP([x_{t-L+1..t}, sin/cos time of day]) per sensor: B x N x d.
- **Vector field** f(H) = tanh(Â H W_g + H W_s + b) W_o, Â the normalised adjacency (GCN).
- **Integration**: ``substeps`` fixed steps of size 1 / substeps per horizon step, each one
  torchdiffeq's own Runge-Kutta step (``rk_common._runge_kutta_step``) with its Bogacki-Shampine
  3(2) tableau: the 3rd-order solution, the first-same-as-last derivative that starts the next step,
  and the embedded 2nd-order solution's difference, from the same stages (no extra evaluation of
  f). The per-sensor local truncation error is e_v = ||H_{n+1,v} - Ĥ_{n+1,v}||_2 over d.
- **LTE-ODE** (``mask`` soft or hard): r_v = e_v / mean_v(e); m_v = sigmoid((r_v - kappa) / tau)
  (soft) or 1[r_v > kappa] (hard), detached (the error is a forward signal, no gradient through
  it); then H_{n+1} <- H_{n+1} + m ⊙ g([H_n, c]) with g an MLP, c the encoder's context.
- **LTE penalty** (the prior work): lambda x mean_v e_v^2 added to the loss.
- **Decoder** y_k = w^T H_k + b after each horizon step (normalised units).
- ``integrator: adaptive``: torchdiffeq's adaptive ``odeint`` (bosh3, rtol / atol) at the K output
  times instead; no per-step error, so neither mask nor penalty.
"""

from __future__ import annotations

import torch
from torch import nn

from repro.studies.lteode.params import ODEParams


class VectorField(nn.Module):
    """f(H) = tanh(Â H W_g + H W_s + b) W_o; counts its evaluations (``nfe``)."""

    def __init__(self, adjacency: torch.Tensor, hidden: int) -> None:
        super().__init__()
        self.register_buffer("adj", adjacency)
        self.graph, self.self_ = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden, bias=False)
        self.out = nn.Linear(hidden, hidden, bias=False)
        self.nfe = 0

    def forward(self, t, h: torch.Tensor, perturb=None) -> torch.Tensor:  # noqa: ARG002 (torchdiffeq's signature)
        self.nfe += 1
        return self.out(torch.tanh(self.graph(self.adj @ h) + self.self_(h)))


def tableau(dtype: torch.dtype, device):
    """torchdiffeq's Bogacki-Shampine 3(2) tableau in ``dtype`` (as its adaptive solver converts it)."""
    from torchdiffeq._impl.bosh3 import _BOGACKI_SHAMPINE_TABLEAU as T  # noqa: PLC0415
    from torchdiffeq._impl.rk_common import _ButcherTableau  # noqa: PLC0415

    return _ButcherTableau(alpha=T.alpha.to(device, dtype), beta=[b.to(device, dtype) for b in T.beta],
                           c_sol=T.c_sol.to(device, dtype), c_error=T.c_error.to(device, dtype))


def rk_step(f: VectorField, h: torch.Tensor, f0: torch.Tensor, t0: float, dt: float, tab):
    """One embedded RK step: (H_{n+1}, f(H_{n+1}), H_{n+1} - Ĥ_{n+1})."""
    from torchdiffeq._impl.rk_common import _runge_kutta_step  # noqa: PLC0415

    t0_ = torch.tensor(t0, dtype=torch.float64, device=h.device)
    dt_ = torch.tensor(dt, dtype=torch.float64, device=h.device)
    y1, f1, err, _ = _runge_kutta_step(f, h, f0, t0_, dt_, t0_ + dt_, tab)
    return y1, f1, err


class GraphODE(nn.Module):
    """Encoder, vector field, jump branch and decoder (the module's shapes in the module docstring)."""

    def __init__(self, adjacency: torch.Tensor, input_len: int, hidden: int, params: ODEParams) -> None:
        super().__init__()
        self.params, self.hidden = params, hidden
        self.encoder = nn.Sequential(nn.Linear(input_len + 2, hidden), nn.Tanh(), nn.Linear(hidden, hidden))
        self.field = VectorField(adjacency, hidden)
        self.jump = (nn.Sequential(nn.Linear(2 * hidden, hidden), nn.Tanh(), nn.Linear(hidden, hidden))
                     if params.compensation else None)
        self.decoder = nn.Linear(hidden, 1)

    def mask_of(self, err: torch.Tensor) -> torch.Tensor:
        """B x N mask from the per-sensor error e (B x N), detached."""
        e = err.detach()
        r = e / (e.mean(dim=1, keepdim=True) + 1e-12)
        if self.params.mask == "soft":
            return torch.sigmoid((r - self.params.kappa) / self.params.tau)
        return (r > self.params.kappa).to(e.dtype)

    def forward(self, x: torch.Tensor, tod: torch.Tensor, horizon: int) -> dict[str, torch.Tensor]:
        """x B x N x L (normalised), tod B (fraction of the day of the last input step) ->
        ``pred`` B x K x N, ``lte`` B x K x N (the summed per-sensor error of each horizon step's
        substeps; zeros for the adaptive integrator), ``mask`` B x K x N (the last substep's)."""
        b, n, _ = x.shape
        clock = torch.stack([torch.sin(2 * torch.pi * tod), torch.cos(2 * torch.pi * tod)], -1)
        context = self.encoder(torch.cat([x, clock[:, None].expand(b, n, 2)], -1))
        h = context
        if self.params.integrator == "adaptive":
            from torchdiffeq import odeint  # noqa: PLC0415

            ts = torch.arange(horizon + 1, dtype=x.dtype, device=x.device)
            hs = odeint(self.field, h, ts, method="bosh3", rtol=self.params.rtol, atol=self.params.atol)[1:]
            zeros = torch.zeros(b, horizon, n, dtype=x.dtype, device=x.device)
            return {"pred": self.decoder(hs).squeeze(-1).transpose(0, 1), "lte": zeros, "mask": zeros}
        tab = tableau(x.dtype, x.device)
        dt = 1.0 / self.params.substeps
        f0 = self.field(0.0, h)
        preds, ltes, masks = [], [], []
        t = 0.0
        for _ in range(horizon):
            lte = torch.zeros(b, n, dtype=x.dtype, device=x.device)
            m = lte
            for _ in range(self.params.substeps):
                h_new, f0, err = rk_step(self.field, h, f0, t, dt, tab)
                e = err.norm(dim=-1)                              # B x N
                lte = lte + e
                if self.params.mask != "none":
                    m = self.mask_of(e)
                    # the jump moves the state, so the next step's first derivative is evaluated
                    # again; a hard mask that fires nowhere moves nothing and costs nothing
                    if self.jump is not None and (self.params.mask == "soft" or bool(m.any())):
                        h_new = h_new + m[..., None] * self.jump(torch.cat([h, context], -1))
                        f0 = self.field(t + dt, h_new)
                h, t = h_new, t + dt
            preds.append(self.decoder(h).squeeze(-1))
            ltes.append(lte)
            masks.append(m)
        return {"pred": torch.stack(preds, 1), "lte": torch.stack(ltes, 1), "mask": torch.stack(masks, 1)}
