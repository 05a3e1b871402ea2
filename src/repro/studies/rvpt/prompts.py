"""Deep visual prompts on open_clip's ``VisionTransformer`` and RVPT's loss (other-papers.md §4.4).

From block D on, ``b`` learnable prompt tokens enter the input of every block (L - D sets),
between the class token and the patch tokens; each block's prompt outputs are dropped and the
next set takes their place (VPT-deep; the paper's exact insertion rule is [I]). The prompted
forward also returns the class token after every block d >= D + 1 (1-based: blocks D+1 .. L), the
features RVPT's feature-repelling term compares with the same encoder run without prompts:

    L = L_CE + alpha * mean_{i, d} cos(c_i^d, sigma_i^d),   alpha = 2 (paper),

L_CE the zero-shot cross-entropy against the frozen class-prompt embeddings at CLIP's
temperature. For d = L the class token is taken before ``ln_post`` and the projection ([I]).
Everything but the prompts stays frozen. Shapes: images N x 3 x H x W, prompts (L - D) x b x W.
"""

from __future__ import annotations

import torch


def init_prompts(visual, start: int, length: int, std: float = 0.02, seed: int = 0, device=None
                 ) -> torch.nn.Parameter:
    """(L - start) x ``length`` x width prompts from N(0, std) ([I]: the paper states a zero-mean
    Gaussian, not its std), drawn on the CPU (the same draw on every device), on ``device``."""
    blocks, width = len(visual.transformer.resblocks), visual.conv1.out_channels
    if not 0 <= start < blocks:
        raise ValueError(f"prompt start block {start} must be in 0..{blocks - 1}")
    g = torch.Generator().manual_seed(seed)
    return torch.nn.Parameter((torch.randn(blocks - start, length, width, generator=g) * std).to(device))


def encode(visual, images: torch.Tensor, prompts: torch.Tensor | None = None, start: int = 0
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """(image features N x embed_dim, unnormalised; class tokens N x (L - start) x W after blocks
    start+1 .. L). ``prompts`` None: the plain encoder (its features equal ``encode_image``'s)."""
    h = visual._embeds(images)  # N x (1 + patches) x W, after ln_pre
    n = h.shape[1] - 1
    cls = []
    for d, block in enumerate(visual.transformer.resblocks):
        if prompts is not None and d >= start:
            p = prompts[d - start].unsqueeze(0).expand(h.shape[0], -1, -1)
            h = torch.cat([h[:, :1], p, h[:, -n:]], 1)
        h = block(h)
        if d >= start:
            cls.append(h[:, 0])
    h = torch.cat([h[:, :1], h[:, -n:]], 1)  # prompt outputs dropped before pooling
    pooled, _ = visual._pool(h)
    if visual.proj is not None:
        pooled = pooled @ visual.proj
    return pooled, torch.stack(cls, 1)


def rvpt_loss(model, images: torch.Tensor, labels: torch.Tensor, class_emb: torch.Tensor,
              prompts: torch.Tensor, start: int, alpha: float, margin: float | None = None
              ) -> tuple[torch.Tensor, dict[str, float]]:
    """L_CE + alpha * L_FR for a batch; ``class_emb`` K x embed_dim normalised (frozen text).
    ``margin`` m: each example's L_FR,i (its mean over layers) becomes max(L_FR,i, m) (the paper's
    margin ablation; m = 1 stops the repelling, i.e. plain VPT)."""
    feats, cls = encode(model.visual, images, prompts, start)
    with torch.no_grad():
        _, cls_plain = encode(model.visual, images, None, start)
    logits = model.logit_scale.exp().detach() * torch.nn.functional.normalize(feats, dim=-1) @ class_emb.T
    ce = torch.nn.functional.cross_entropy(logits, labels)
    fr_i = torch.nn.functional.cosine_similarity(cls, cls_plain, dim=-1).mean(-1)
    fr = (fr_i if margin is None else fr_i.clamp(min=margin)).mean()
    return ce + alpha * fr, {"ce": ce.item(), "fr": fr.item()}
