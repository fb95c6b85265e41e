"""DENSE: data-free one-shot FL by a generator trained against the client ensemble, for the client ViTs.

"DENSE: Data-Free One-Shot Federated Learning", Zhang et al., NeurIPS 2022 (arXiv 2112.12371); reference code
zj-jayzhang/DENSE (`helpers/synthesizers.py` AdvSynthesizer, `models/generator.py`, `loop_df_fl.py`), read, not
copied. This is the data-free *generator* baseline of FedMITR's comparison.

Implemented: the two-stage loop. Each round resets a small conv generator G and a learnable latent batch z, trains
them for `g_steps` Adam steps on

    L_G = oh * CE(Ens(G(z)), y) + bn * sum_{client k, layer l} (||mu_l(G(z)) - mu_kl||_2 + ||var_l(G(z)) - var_kl||_2)
          - adv * mean_b [ 1[argmax S(x_b) != argmax Ens(x_b)] * KL(Ens(x_b) || S(x_b)) ]

keeps the lowest-loss batch of the round in a pool, then trains the student S (the global model) by ensemble KD on
the pool. ViTs have no BatchNorm, so the BN-statistics prior of DENSE is replaced by its closest ViT analogue:
each client uploads, with its model, the per-channel mean and variance of the residual stream at the input of every
encoder layer, measured on its own training data (`feature_stats`) -- the same first and second moments a BN layer
keeps as running statistics. `bn=0` (or no statistics) gives the purely data-free variant.

Not implemented: DENSE's random-crop / resized-crop augmentations (they move the ViT patch grid; a horizontal flip
is used), its optional MLP gating of the ensemble (commented out in the reference), the image pool on disk.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Iterable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from tenfold.common.errors import UserError, check_choice
from tenfold.federated.oneshot.fedmitr import (WEIGHTINGS, SyntheticSet, TokenRelabelLoss, ensemble_forward,
                                               ensemble_weights, vit_geometry)


# ----------------------------------------------------------------------------- feature statistics (the BN analogue)
def forward_with_stats(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """An HF `ViTForImageClassification` forward that also returns the residual-stream moments per layer.

    Parameters
    ----------
    model : ViTForImageClassification
    x : Tensor of shape (B, C, H, W)

    Returns
    -------
    logits : Tensor of shape (B, num_labels), equal to `model(x).logits`
    stats : Tensor of shape (L, 2, D): per encoder layer, the per-channel mean and (biased) variance of the layer's
        input tokens (CLS and patches) over the batch and the sequence, as a BatchNorm over (B, T) would measure them.
    """
    vit = model.vit
    h = vit.embeddings(x)                                    # (B, 1 + N, D)
    stats = []
    for layer in vit.layers:
        flat = h.reshape(-1, h.shape[-1])                    # (B * T, D)
        stats.append(torch.stack([flat.mean(0), flat.var(0, unbiased=False)]))
        h = layer(h)
    logits = model.classifier(vit.layernorm(h)[:, 0])
    return logits, torch.stack(stats)


def feature_stats(model: nn.Module, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """(L, 2, D) mean and variance of each layer's input tokens over a whole data set `x` (B, C, H, W).

    What a client uploads next to its model for DENSE's statistics prior (computed exactly over all of `x`, pooled
    from per-batch moments).
    """
    if len(x) == 0:
        raise UserError("Invalid x: empty; feature statistics need at least one image")
    model.eval()
    s1, s2, n = None, None, 0
    with torch.no_grad():
        for xb in x.split(batch):
            _, st = forward_with_stats(model, xb)            # (L, 2, D)
            m = xb.shape[0]
            mean, var = st[:, 0], st[:, 1]
            s1 = mean * m if s1 is None else s1 + mean * m
            s2 = (var + mean ** 2) * m if s2 is None else s2 + (var + mean ** 2) * m
            n += m
    mean = s1 / n
    return torch.stack([mean, s2 / n - mean ** 2], dim=1)


# ----------------------------------------------------------------------------- the generator
class ConvGenerator(nn.Module):
    """DENSE's image generator, narrow for CPU: z (B, nz) -> Linear -> (2ngf, s/4, s/4) -> [BN, up x2, conv3x3,
    BN, LeakyReLU] x2 -> conv3x3 -> tanh -> images (B, nc, s, s) in [-1, 1] (our normalised pixel range).

    Parameters
    ----------
    nz : int, default=64
        Latent size (DENSE: 256).
    ngf : int, default=16
        Base width (DENSE: 64; 16 keeps the generator's cost near the tiny ViTs' on CPU).
    img_size : int, default=28
        Must be divisible by 4.
    nc : int, default=1
        Image channels.

    Examples
    --------
    >>> g = ConvGenerator(nz=8, ngf=4, img_size=8, nc=1)
    >>> tuple(g(torch.randn(3, 8)).shape)
    (3, 1, 8, 8)
    """

    def __init__(self, nz: int = 64, ngf: int = 16, img_size: int = 28, nc: int = 1):
        super().__init__()
        if img_size % 4:
            raise UserError(f"Invalid img_size: {img_size}; expected a multiple of 4")
        self.init_size = img_size // 4
        self.l1 = nn.Linear(nz, 2 * ngf * self.init_size ** 2)
        self.blocks = nn.Sequential(
            nn.BatchNorm2d(2 * ngf), nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * ngf, 2 * ngf, 3, padding=1, bias=False), nn.BatchNorm2d(2 * ngf), nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * ngf, ngf, 3, padding=1, bias=False), nn.BatchNorm2d(ngf), nn.LeakyReLU(0.2),
            nn.Conv2d(ngf, nc, 3, padding=1), nn.Tanh())

    def reset(self, gen: torch.Generator) -> None:
        """DENSE's `reset_model`: N(0, 0.02) weights, zero biases, BN weights N(1, 0.02), from `gen`."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                with torch.no_grad():
                    m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.02)
                    if m.bias is not None:
                        m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                with torch.no_grad():
                    m.weight.copy_(1.0 + torch.randn(m.weight.shape, generator=gen) * 0.02)
                    m.bias.zero_()
                m.reset_running_stats()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.l1(z).view(z.shape[0], -1, self.init_size, self.init_size)
        return self.blocks(h)


# ----------------------------------------------------------------------------- losses
def stats_loss(stats: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> torch.Tensor:
    """DeepInversion's BN term on ViT features: sum over models and layers of ||mu - mu*||_2 + ||var - var*||_2.

    stats, targets : sequences (one per client) of (L, 2, D) tensors.
    """
    loss = stats[0].new_zeros(())
    for s, t in zip(stats, targets):
        loss = loss + torch.linalg.vector_norm(s[:, 0] - t[:, 0], dim=-1).sum() \
            + torch.linalg.vector_norm(s[:, 1] - t[:, 1], dim=-1).sum()
    return loss


def adversarial_loss(student_logits: torch.Tensor, ens_log_prob: torch.Tensor) -> torch.Tensor:
    """DENSE's decision-adversarial term: -mean_b [1[disagree_b] * KL(Ens_b || S_b)]; (B, C), (B, C) -> scalar.

    Minimising it pushes the generator towards images where the student and the ensemble disagree.
    """
    disagree = (student_logits.argmax(1) != ens_log_prob.argmax(1)).float()
    kl = (ens_log_prob.exp() * (ens_log_prob - F.log_softmax(student_logits, -1))).sum(-1)   # (B,)
    return -(kl * disagree).mean()


# ----------------------------------------------------------------------------- DENSE
class DenseSynthesizer:
    """DENSE: alternate generator training (against the ensemble and the current student) and student KD.

    `rounds` rounds; each resets the generator and a latent batch of `batch_size`, trains both for `g_steps` steps
    of Adam(lr_g, betas (0.5, 0.999)) on the generator loss in the module docstring, adds the round's lowest-loss
    batch to the pool, then takes the round's share of `kd_steps` student steps on minibatches of the pool.
    The pool ends with rounds * batch_size images.

    Parameters
    ----------
    rounds : int, default=8
        Synthesis rounds (DENSE: epochs=200, one synthesis batch each).
    g_steps : int, default=30
        Generator steps per round (DENSE README: 30).
    batch_size : int, default=32
        Images generated per round (DENSE: 256).
    nz, ngf : int, default=64, 16
        Generator size (see `ConvGenerator`).
    lr_g : float, default=1e-3
        Adam learning rate of the generator and the latents (DENSE README).
    oh_weight, bn_weight, adv_weight : float, default=1.0, 1.0, 1.0
        Class-score, feature-statistics and adversarial weights (DENSE README: oh=1, bn=1, adv=1).
    flip : bool, default=True
        Random horizontal flip of the generated batch before the models (DENSE flips and crops).
    ensemble_weighting : {"uniform", "label_count"}, default="uniform"
    seed : int, default=0

    Examples
    --------
    >>> from tenfold.models.hf_tiny import tiny_vit
    >>> m, _ = tiny_vit("debug", image_size=8, patch_size=4, num_channels=1)
    >>> s, _ = tiny_vit("debug", image_size=8, patch_size=4, num_channels=1)
    >>> out = DenseSynthesizer(rounds=2, g_steps=2, batch_size=3, nz=8, ngf=4).distill([m], s, kd_steps=2,
    ...                                                                                 kd_batch=2)
    >>> len(out["synthetic"]), len(out["losses"])
    (6, 2)
    """

    def __init__(self, *, rounds: int = 8, g_steps: int = 30, batch_size: int = 32, nz: int = 64, ngf: int = 16,
                 lr_g: float = 1e-3, oh_weight: float = 1.0, bn_weight: float = 1.0, adv_weight: float = 1.0,
                 flip: bool = True, ensemble_weighting: str = "uniform", seed: int = 0):
        for name, v in (("rounds", rounds), ("g_steps", g_steps), ("batch_size", batch_size), ("nz", nz),
                        ("ngf", ngf)):
            if int(v) < 1:
                raise UserError(f"Invalid {name}: {v}; expected >= 1")
        if lr_g <= 0:
            raise UserError(f"Invalid lr_g: {lr_g}; expected > 0")
        for name, v in (("oh_weight", oh_weight), ("bn_weight", bn_weight), ("adv_weight", adv_weight)):
            if v < 0:
                raise UserError(f"Invalid {name}: {v}; expected >= 0")
        if oh_weight + bn_weight + adv_weight == 0:
            raise UserError("Invalid weights: oh_weight, bn_weight and adv_weight are all 0")
        check_choice("ensemble_weighting", ensemble_weighting, WEIGHTINGS)
        self.rounds, self.g_steps, self.batch_size = int(rounds), int(g_steps), int(batch_size)
        self.nz, self.ngf, self.lr_g = int(nz), int(ngf), float(lr_g)
        self.oh_weight, self.bn_weight, self.adv_weight = float(oh_weight), float(bn_weight), float(adv_weight)
        self.flip, self.ensemble_weighting, self.seed = bool(flip), ensemble_weighting, int(seed)

    def _ensemble(self, models, x, weights, with_stats: bool):
        """Ensemble log-probabilities (B, C) and, if asked, each client's (L, 2, D) feature moments."""
        if not with_stats:
            return ensemble_forward(models, x, None, weights)["log_prob"], None
        probs, stats = [], []
        for m in models:
            logits, st = forward_with_stats(m, x)
            probs.append(torch.softmax(logits, -1))
            stats.append(st)
        mix = (torch.stack(probs) * weights.unsqueeze(1)).sum(0)
        mix = mix / mix.sum(-1, keepdim=True)
        return torch.log(mix.clamp_min(1e-12)), stats

    def generate_round(self, models, student, generator, y, weights, targets, gen) -> tuple[torch.Tensor, float, int]:
        """One round of generator training for targets y (B,); returns (best images (B, C, H, W), best loss,
        patch tokens forwarded through the client models)."""
        generator.reset(gen)
        generator.train()
        z = torch.randn(len(y), self.nz, generator=gen).requires_grad_(True)
        opt = torch.optim.Adam([{"params": generator.parameters()}, {"params": [z]}], lr=self.lr_g,
                               betas=(0.5, 0.999))
        use_stats = self.bn_weight > 0 and targets is not None
        student.eval()                                       # the student is a fixed adversary in this phase
        best, best_loss, tokens = None, math.inf, 0
        n_tok = models[0].config.image_size // models[0].config.patch_size
        for _ in range(self.g_steps):
            x = generator(z)                                 # (B, C, H, W) in [-1, 1]
            xin = torch.flip(x, dims=(-1,)) if self.flip and bool(torch.rand((), generator=gen) < 0.5) else x
            logp, stats = self._ensemble(models, xin, weights, use_stats)
            loss = self.oh_weight * F.nll_loss(logp, y)
            if use_stats:
                loss = loss + self.bn_weight * stats_loss(stats, targets)
            if self.adv_weight:
                loss = loss + self.adv_weight * adversarial_loss(student(xin).logits, logp)
            lv = float(loss.detach())
            if lv < best_loss or best is None:               # DENSE keeps the best batch seen, before the step
                best_loss, best = lv, x.detach().clone()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tokens += len(y) * n_tok * n_tok * len(models)
        return best, best_loss, tokens

    def distill(self, client_models: Sequence[nn.Module], student: nn.Module, *,
                feature_stats: Sequence[torch.Tensor] | None = None, loss: TokenRelabelLoss | None = None,
                kd_steps: int = 120, kd_batch: int = 64, lr: float = 1e-3, weight_decay: float = 0.0,
                label_counts: torch.Tensor | None = None, progress: Callable[..., Iterable] | None = None) -> dict:
        """Run DENSE end to end: train `student` in place from the client ensemble, without data.

        Parameters
        ----------
        client_models : sequence of ViTForImageClassification (same geometry; eval mode, frozen here)
        student : ViTForImageClassification, the global model (trained in place; initialise it as you like)
        feature_stats : sequence of (L, 2, D) tensors, one per client, or None
            The clients' uploaded feature moments (`feature_stats`); None drops the statistics prior.
        loss : TokenRelabelLoss or None
            The KD loss; only its image-level term is used (default: KL at temperature 1).
        kd_steps : int, default=120
            Student AdamW steps in total, spread evenly over the rounds.
        kd_batch, lr, weight_decay : the student's minibatch size and AdamW settings.
        label_counts : Tensor (n_models, C) or None, for ensemble_weighting="label_count".
        progress : callable wrapping an iterable, or None.

        Returns
        -------
        dict with "synthetic" (SyntheticSet: the pool, mask all ones, soft = ensemble probabilities, stats with
        synthesis_seconds, synthesis_cpu_seconds, token_steps, ensemble_agreement, keep_ratio=1), "losses" (mean KD loss per round),
        "seconds" (student training time).
        """
        models = list(client_models)
        geo = vit_geometry(models)
        sgeo = vit_geometry([student])
        for key in ("num_labels", "patch_size", "image_size", "num_channels"):
            if sgeo[key] != geo[key]:
                raise UserError(f"Invalid student: {key}={sgeo[key]} but the client models have {geo[key]}")
        if feature_stats is not None:
            if len(feature_stats) != len(models):
                raise UserError(f"Invalid feature_stats: {len(feature_stats)} entries for {len(models)} clients")
            want = (len(models[0].vit.layers), 2, models[0].config.hidden_size)
            for i, t in enumerate(feature_stats):
                if tuple(t.shape) != want:
                    raise UserError(f"Invalid feature_stats[{i}]: shape {tuple(t.shape)}; expected {want}")
        for name, v in (("kd_steps", kd_steps), ("kd_batch", kd_batch)):
            if int(v) < 1:
                raise UserError(f"Invalid {name}: {v}; expected >= 1")
        weights = ensemble_weights(label_counts, len(models), geo["num_labels"], self.ensemble_weighting)
        kd = TokenRelabelLoss(loss.cls_weight or 1.0, 0.0, loss.temperature) if loss else TokenRelabelLoss(1.0, 0.0)
        for m in models:
            m.eval()
            m.requires_grad_(False)
        gen = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        generator = ConvGenerator(self.nz, self.ngf, geo["image_size"], geo["num_channels"])
        opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=weight_decay)
        xs, ys, softs, losses = [], [], [], []
        syn_s, syn_cpu, kd_s, tokens = 0.0, 0.0, 0.0, 0
        share = [kd_steps // self.rounds + (1 if r < kd_steps % self.rounds else 0) for r in range(self.rounds)]
        rounds = range(self.rounds)
        for r in (progress(rounds, desc="DENSE rounds") if progress else rounds):
            t0, c0 = time.perf_counter(), time.process_time()
            b, c = self.batch_size, geo["num_labels"]
            y = torch.randperm(c, generator=gen).repeat(b // c + 1)[:b]
            student.requires_grad_(False)
            x, _, tok = self.generate_round(models, student, generator, y, weights, feature_stats, gen)
            with torch.no_grad():
                soft = ensemble_forward(models, x, None, weights)["log_prob"].exp()
            xs.append(x), ys.append(y), softs.append(soft)
            tokens += tok
            syn_s += time.perf_counter() - t0
            syn_cpu += time.process_time() - c0

            t0 = time.perf_counter()
            px, py, ps = torch.cat(xs), torch.cat(ys), torch.cat(softs)
            student.requires_grad_(True)
            student.train()
            total, order = 0.0, torch.randperm(len(px), generator=gen)
            for s in range(share[r]):
                idx = order[(torch.arange(kd_batch) + s * kd_batch) % len(px)]
                out = student(px[idx]).logits
                l = kd(out, None, py[idx], ps[idx], torch.ones(len(idx), 1))
                opt.zero_grad(set_to_none=True)
                l.backward()
                opt.step()
                total += float(l.detach())
            losses.append(total / max(share[r], 1))
            kd_s += time.perf_counter() - t0
        student.eval()
        x, y, soft = torch.cat(xs), torch.cat(ys), torch.cat(softs)
        stats = {"synthesis_seconds": syn_s, "synthesis_cpu_seconds": syn_cpu, "keep_ratio": 1.0, "token_steps": int(tokens), "steps": self.g_steps,
                 "ensemble_agreement": float((soft.argmax(1) == y).float().mean())}
        syn = SyntheticSet(x, y, soft, torch.ones(len(y), geo["n_patches"]), stats)
        return {"synthetic": syn, "losses": losses, "seconds": kd_s}
