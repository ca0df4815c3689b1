"""The PyTorch reference of `bench/train_step.py`: the same pre-training step in PyTorch.

Written from the reference code bases (CLMR's SampleCNN, facebookresearch/vicreg's projector,
loss and LARS, Spijkervet/SimCLR's projector and NT-Xent), run eager or with `torch.compile` on the
forward pass and loss, on the same synthetic tracks and with the same device-side crops as the
Keras step. It has no augmentation (there is no on-device torch port of CLMR's chain). torch is
imported inside the functions, so `train_step.py` runs where torch is not installed.
"""

from __future__ import annotations

import time

from bench import common


def torch_parts() -> dict:
    """The PyTorch reference pieces: {"sample_cnn", "projector", "vicreg", "nt_xent", "LARS"}.

    Written from the reference code bases (anchors.md 1.1-1.3, 3) so that the torch step is the
    step the thesis trained; torch is imported here only.
    """
    import torch
    from torch import nn

    def conv_bn_relu(c_in, c_out, stride, padding):
        return [nn.Conv1d(c_in, c_out, 3, stride=stride, padding=padding),
                nn.BatchNorm1d(c_out), nn.ReLU()]

    def sample_cnn(widths, rep_dim):
        """Spijkervet/CLMR SampleCNN(strides=[3]*9) without its fc (SimCLR replaces it)."""
        layers = conv_bn_relu(1, 128, 3, 0)
        c_in = 128
        for width in widths:
            layers += conv_bn_relu(c_in, width, 1, 1) + [nn.MaxPool1d(3, 3)]
            c_in = width
        layers += conv_bn_relu(c_in, rep_dim, 1, 1) + [nn.Flatten()]
        return nn.Sequential(*layers)

    def projector(kind, spec, in_dim):
        widths = [int(w) for w in spec.split("-")]
        layers, prev = [], in_dim
        for width in widths[:-1]:
            if kind == "vicreg":  # facebookresearch/vicreg Projector
                layers += [nn.Linear(prev, width), nn.BatchNorm1d(width), nn.ReLU()]
            else:  # Spijkervet/SimCLR: no bias, no BN
                layers += [nn.Linear(prev, width, bias=False), nn.ReLU()]
            prev = width
        layers.append(nn.Linear(prev, widths[-1], bias=False))
        return nn.Sequential(*layers)

    def vicreg(x, y):
        """facebookresearch/vicreg VICReg.forward on one device (25/25/1)."""
        n, d = x.shape
        repr_loss = nn.functional.mse_loss(x, y)
        x = x - x.mean(dim=0)
        y = y - y.mean(dim=0)
        std_x = torch.sqrt(x.var(dim=0) + 1e-4)
        std_y = torch.sqrt(y.var(dim=0) + 1e-4)
        std_loss = torch.mean(nn.functional.relu(1 - std_x)) / 2 + \
            torch.mean(nn.functional.relu(1 - std_y)) / 2
        cov_x = (x.T @ x) / (n - 1)
        cov_y = (y.T @ y) / (n - 1)
        off = lambda m: (m.pow(2).sum() - torch.diagonal(m).pow(2).sum()) / d  # noqa: E731
        return 25.0 * repr_loss + 25.0 * std_loss + off(cov_x) + off(cov_y)

    def nt_xent(z_i, z_j, temperature=0.5):
        """Spijkervet/SimCLR NT_Xent (world_size 1): CE over [positive | negatives] / 2B."""
        b = z_i.shape[0]
        z = torch.cat((z_i, z_j), dim=0)
        sim = nn.functional.cosine_similarity(z.unsqueeze(1), z.unsqueeze(0), dim=2) / temperature
        positives = torch.cat((torch.diag(sim, b), torch.diag(sim, -b))).reshape(2 * b, 1)
        mask = torch.ones_like(sim, dtype=torch.bool)
        mask.fill_diagonal_(False)
        idx = torch.arange(b, device=sim.device)
        mask[idx, b + idx] = False
        mask[b + idx, idx] = False
        negatives = sim[mask].reshape(2 * b, -1)
        logits = torch.cat((positives, negatives), dim=1)
        labels = torch.zeros(2 * b, dtype=torch.long, device=sim.device)
        return nn.functional.cross_entropy(logits, labels, reduction="sum") / (2 * b)

    class LARS(torch.optim.Optimizer):
        """facebookresearch/vicreg LARS (rank-1 parameters excluded from decay and adaptation)."""

        def __init__(self, params, lr, weight_decay=1e-6, momentum=0.9, eta=0.001):
            super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum,
                                          eta=eta))

        @torch.no_grad()
        def step(self):
            for g in self.param_groups:
                for p in g["params"]:
                    if p.grad is None:
                        continue
                    dp = p.grad
                    if p.ndim > 1:
                        dp = dp.add(p, alpha=g["weight_decay"])
                        p_norm, u_norm = torch.norm(p), torch.norm(dp)
                        one = torch.ones_like(p_norm)
                        q = torch.where(p_norm > 0.0, torch.where(
                            u_norm > 0, (g["eta"] * p_norm / u_norm), one), one)
                        dp = dp.mul(q)
                    state = self.state[p]
                    if "mu" not in state:
                        state["mu"] = torch.zeros_like(p)
                    mu = state["mu"]
                    mu.mul_(g["momentum"]).add_(dp)
                    p.add_(mu, alpha=-g["lr"])

    return {"sample_cnn": sample_cnn, "projector": projector, "vicreg": vicreg,
            "nt_xent": nt_xent, "LARS": LARS}


def run_torch(cfg: dict) -> dict:
    """Times the PyTorch reference step (eager or torch.compile) for one configuration."""
    import numpy as np
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(cfg["seed"])
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    parts = torch_parts()
    sample_cnn, projector, LARS = parts["sample_cnn"], parts["projector"], parts["LARS"]
    vicreg, nt_xent = parts["vicreg"], parts["nt_xent"]

    crop_len, batch = cfg["crop_len"], cfg["batch"]
    encoder = sample_cnn(cfg["widths"], cfg["rep_dim"]).to(device)
    kind = "vicreg" if cfg["objective"] == "vicreg" else "clmr"
    proj = projector(kind, cfg["projector"], cfg["rep_dim"]).to(device)
    params = list(encoder.parameters()) + list(proj.parameters())
    lr = common.LEARNING_RATES[cfg["optimizer"]]
    opt = {"sgd": lambda: torch.optim.SGD(params, lr=lr, momentum=0.9),
           "adam": lambda: torch.optim.Adam(params, lr=lr),
           "lars": lambda: LARS(params, lr=lr)}[cfg["optimizer"]]()
    objective = vicreg if cfg["objective"] == "vicreg" else nt_xent
    bf16 = cfg["precision"] == "mixed_bfloat16"

    def forward_loss(view_a, view_b):
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            z_a = proj(encoder(view_a.unsqueeze(1)))
            z_b = proj(encoder(view_b.unsqueeze(1)))
        return objective(z_a.float(), z_b.float())

    mode = cfg["torch_mode"]
    step_fn = torch.compile(forward_loss) if mode == "compile" else forward_loss
    if cfg.get("breakdown"):
        return _breakdown_torch(cfg, device, encoder, step_fn, opt)
    tracks = common.make_tracks(cfg["tracks"], cfg["track_len"], cfg["seed"])
    tracks = torch.from_numpy(tracks).to(device)
    num_tracks, track_len = tracks.shape
    flat = tracks.reshape(-1)
    ramp = torch.arange(crop_len, device=device)

    def train_step():
        # Same device-side crops as the Keras step: one track, two offsets per pair.
        track = torch.randint(0, num_tracks, (1, batch), device=device)
        offset = torch.randint(0, track_len - crop_len + 1, (2, batch), device=device)
        views = flat[(track * track_len + offset).unsqueeze(-1) + ramp].float() / 32768.0
        loss = step_fn(views[0], views[1])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    begin = time.perf_counter()
    for _ in range(cfg["warmup"]):
        loss = train_step()
    warm_loss = float(loss.detach())
    sync()
    start = time.perf_counter()
    for _ in range(cfg["steps"]):
        loss = train_step()
    sync()
    seconds = time.perf_counter() - start
    if device == "cuda":
        dev_name = f"gpu: {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
        peak = round(torch.cuda.max_memory_allocated() / 1e9, 2)
    else:
        dev_name, peak = common.cpu_description(), None
    return {
        "impl": f"torch_{mode}", "backend": "torch",
        "pairs_per_s": round(cfg["steps"] * batch / seconds, 2),
        "step_ms": round(1000.0 * seconds / cfg["steps"], 2), "timed_steps": cfg["steps"],
        "warmup_s": round(start - begin, 2), "loss_after_warmup": warm_loss,
        "loss_last": float(loss.detach()), "device": dev_name, "peak_mem_gb": peak,
        "threads": torch.get_num_threads() if device == "cpu" else None,
        "versions": common.package_versions(["torch"]), "numpy": np.__version__,
    }


def _breakdown_torch(cfg, device, encoder, step_fn, opt) -> dict:
    """The parts of `breakdown_tensorflow` for the torch step, on fixed views."""
    import torch
    gen = torch.Generator().manual_seed(cfg["seed"])
    va, vb = (0.1 * torch.randn(cfg["batch"], 1, cfg["crop_len"], generator=gen).to(device)
              for _ in range(2))

    def encoder_fwd_bwd():
        opt.zero_grad(set_to_none=True)
        (encoder(va).sum() + encoder(vb).sum()).backward()

    def grads():
        opt.zero_grad(set_to_none=True)
        step_fn(va[:, 0], vb[:, 0]).backward()

    def step():
        grads()
        opt.step()

    parts = {"encoder_fwd": lambda: (encoder(va), encoder(vb)),
             "encoder_fwd_bwd": encoder_fwd_bwd, "grads": grads, "step": step}
    sync = (lambda out: torch.cuda.synchronize()) if device == "cuda" else (lambda out: None)
    return {"impl": f"torch_{cfg['torch_mode']}", "backend": "torch",
            "breakdown_ms": common.time_parts(parts, cfg["warmup"], cfg["steps"], sync),
            "device": common.cpu_description() if device == "cpu" else
            f"gpu: {torch.cuda.get_device_name(0)}",
            "versions": common.package_versions(["torch"]),
            "threads": torch.get_num_threads()}
