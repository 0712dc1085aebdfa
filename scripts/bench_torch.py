#!/usr/bin/env python3
"""PyTorch CPU baseline for `dppo bench`.

This is the "alternative a user would pick": the same DPPO Hopper workload as
the Swift benchmark, written the obvious way in eager PyTorch on the CPU with
one thread and float32.  Its numbers are the yardstick the Swift figures are
compared against, so it measures the same two things:

1. Chain sampling.  A DiffusionMLP actor (action chunk 4x3 flattened to 12,
   obs 11, sinusoidal time embedding 16 -> MLP -> 16, residual MLP of width
   512; 553,020 parameters) runs the K=20 step DDPM reverse process with a
   cosine schedule.  The last K'=10 steps use a fine-tuned copy of the
   network, and the last 11 iterates are recorded as the chain.  Two variants:
   `efficient` does 20 network passes per chain; `reference_style` mirrors the
   DPPO reference, which evaluates the frozen base network on all 20 steps and
   additionally the fine-tuned network on the last 10, overwriting the base
   output (30 passes).  Reported as chains per second at several batch sizes.

2. Learner update.  One PPO minibatch: 5,000 env-step samples x 10 denoising
   transitions = 50,000 rows.  Clamped Gaussian log-probabilities of each
   transition under the actor, clipped surrogate (eps = 0.01), critic value
   loss, backward, AdamW steps for actor and critic.  The critic is evaluated
   either on all 50,000 rows (as the reference does, once per pair) or on the
   5,000 distinct observations.  Reported as env-step samples per second.

Usage: python3 scripts/bench_torch.py [--seconds S] [--json]
Needs `pip install torch==2.13.0+cpu`.
"""
import argparse
import json
import math
import sys
import time

try:
    import torch
    from torch import nn
except ImportError:
    print("torch is not installed; run `pip install torch==2.13.0+cpu`")
    sys.exit(3)

K, K_FT, TP, DA, OBS = 20, 10, 4, 3, 11
ACT = TP * DA
BATCHES = [1, 8, 40, 256]
N_SAMPLES = 5000
CLIP_EPS = 0.01
MIN_STD = 0.1


class Residual(nn.Module):
    """h + Linear(act(Linear(act(h))))."""

    def __init__(self, width, act):
        super().__init__()
        self.l1, self.l2, self.act = nn.Linear(width, width), nn.Linear(width, width), act

    def forward(self, h):
        return h + self.l2(self.act(self.l1(self.act(h))))


class DiffusionMLP(nn.Module):
    def __init__(self):
        super().__init__()
        half = 8
        freqs = torch.exp(-torch.arange(half, dtype=torch.float32) * math.log(10000.0) / (half - 1))
        self.register_buffer("freqs", freqs)
        self.time_mlp = nn.Sequential(nn.Linear(16, 32), nn.Mish(), nn.Linear(32, 16))
        self.net = nn.Sequential(nn.Linear(ACT + 16 + OBS, 512), Residual(512, nn.ReLU()), nn.Linear(512, ACT))

    def forward(self, x, t, obs):
        arg = t.to(torch.float32)[:, None] * self.freqs[None, :]
        temb = self.time_mlp(torch.cat([arg.sin(), arg.cos()], dim=1))
        return self.net(torch.cat([x, temb, obs], dim=1))


def make_critic():
    return nn.Sequential(nn.Linear(OBS, 256), Residual(256, nn.Mish()), nn.Linear(256, 1))


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def cosine_schedule():
    """Per-step float32 tensors of the DDPM cosine schedule (s = 0.008)."""
    s = 0.008
    i = torch.arange(K + 1, dtype=torch.float64)
    ab = torch.cos(((i / K + s) / (1 + s)) * math.pi / 2) ** 2
    ab = ab / math.cos(s / (1 + s) * math.pi / 2) ** 2
    betas = torch.clamp(1 - ab[1:] / ab[:-1], 0, 0.999).to(torch.float32)
    alphas = 1 - betas
    abar = torch.cumprod(alphas, 0)
    abar_prev = torch.cat([torch.ones(1), abar[:-1]])
    var = betas * (1 - abar_prev) / (1 - abar)
    logvar = torch.log(torch.clamp(var, min=1e-20))
    return {
        "sqrt_recip": torch.sqrt(1 / abar),
        "sqrt_recipm1": torch.sqrt(1 / abar - 1),
        "coef1": betas * torch.sqrt(abar_prev) / (1 - abar),
        "coef2": (1 - abar_prev) * torch.sqrt(alphas) / (1 - abar),
        "std": torch.clamp(torch.exp(0.5 * logvar), min=MIN_STD),
    }


def sample_chain(base, ft, obs, sch, reference_style):
    """Run the 20 reverse steps; return the last 11 iterates, shape (B, 11, 12)."""
    b = obs.shape[0]
    x = torch.randn(b, ACT)
    chain = []
    for t in range(K - 1, -1, -1):
        tt = torch.full((b,), t, dtype=torch.long)
        if reference_style:
            eps = base(x, tt, obs)
            if t < K_FT:
                eps = ft(x, tt, obs)  # overwrites the base output
        else:
            eps = (ft if t < K_FT else base)(x, tt, obs)
        x0 = (sch["sqrt_recip"][t] * x - sch["sqrt_recipm1"][t] * eps).clamp(-1, 1)
        mu = sch["coef1"][t] * x0 + sch["coef2"][t] * x
        x = mu + sch["std"][t] * torch.randn_like(x).clamp(-3, 3)
        if t <= K_FT:  # iterate entering the fine-tuned segment, then its 10 steps
            chain.append(x)
    return torch.stack(chain, dim=1)


def time_it(fn, seconds):
    """Seconds per call: one warm-up, then repeat until `seconds` and >= 2 calls."""
    fn()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and calls >= 2:
            return elapsed / calls


def learner_batch(base, ft, sch):
    """Synthetic but realistic minibatch: chains drawn from the sampler itself."""
    obs = torch.randn(N_SAMPLES, OBS)
    with torch.no_grad():
        chains = sample_chain(base, ft, obs, sch, reference_style=False)  # (N, 11, 12)
    x = chains[:, :-1].reshape(-1, ACT)
    x_next = chains[:, 1:].reshape(-1, ACT)
    t = (K_FT - 1 - torch.arange(K_FT)).repeat(N_SAMPLES)  # row (n, j) has t = 9 - j
    return {
        "obs": obs,
        "obs_rep": obs.repeat_interleave(K_FT, dim=0),
        "x": x, "x_next": x_next, "t": t,
        "old_logp": torch.randn(N_SAMPLES * K_FT) * 0.1 - 1.0,
        "adv": torch.randn(N_SAMPLES * K_FT),
        "returns": torch.randn(N_SAMPLES),
    }


def learner_step(ft, critic, opt_a, opt_c, sch, d, critic_per_pair):
    t = d["t"]
    eps = ft(d["x"], t, d["obs_rep"])
    x0 = (sch["sqrt_recip"][t, None] * d["x"] - sch["sqrt_recipm1"][t, None] * eps).clamp(-1, 1)
    mu = sch["coef1"][t, None] * x0 + sch["coef2"][t, None] * d["x"]
    std = sch["std"][t, None]
    logp = -0.5 * ((d["x_next"] - mu) / std) ** 2 - std.log() - 0.5 * math.log(2 * math.pi)
    new_logp = logp.clamp(-5, 2).mean(dim=1)
    ratio = torch.exp(new_logp - d["old_logp"])
    adv = d["adv"]
    pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - CLIP_EPS, 1 + CLIP_EPS)).mean()
    if critic_per_pair:
        v = critic(d["obs_rep"]).squeeze(1)
        ret = d["returns"].repeat_interleave(K_FT)
    else:
        v = critic(d["obs"]).squeeze(1)
        ret = d["returns"]
    v_loss = 0.5 * ((v - ret) ** 2).mean()
    (pg_loss + v_loss).backward()
    opt_a.step()
    opt_c.step()
    opt_a.zero_grad()
    opt_c.zero_grad()


def run(seconds):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    base = DiffusionMLP()
    ft = DiffusionMLP()
    ft.load_state_dict(base.state_dict())
    critic = make_critic()
    assert n_params(base) == 553_020, n_params(base)
    assert n_params(critic) == 134_913, n_params(critic)
    base.requires_grad_(False)
    sch = cosine_schedule()

    sampling = []
    with torch.no_grad():
        for b in BATCHES:
            obs = torch.randn(b, OBS)
            row = {"batch": b}
            for name, ref in (("efficient", False), ("reference_style", True)):
                sec = time_it(lambda: sample_chain(base, ft, obs, sch, ref), seconds)
                row[f"{name}_chains_per_second"] = b / sec
            sampling.append(row)

    opt_a = torch.optim.AdamW(ft.parameters(), lr=1e-4)
    opt_c = torch.optim.AdamW(critic.parameters(), lr=1e-3)
    data = learner_batch(base, ft, sch)
    learner = {}
    for key, per_pair in (("critic_per_pair", True), ("critic_per_sample", False)):
        sec = time_it(lambda: learner_step(ft, critic, opt_a, opt_c, sch, data, per_pair), seconds)
        learner[f"env_step_samples_per_second_{key}"] = N_SAMPLES / sec

    return {"torch_version": torch.__version__, "threads": torch.get_num_threads(),
            "chain_sampling": sampling, "learner_update": learner}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="minimum timed seconds per measurement")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    res = run(args.seconds)
    if args.json:
        print(json.dumps(res))
        return
    print(f"PyTorch {res['torch_version']} CPU, {res['threads']} thread, float32")
    print("\nChain sampling (chains/s)")
    print(f"{'batch':>6} {'efficient (20)':>16} {'reference (30)':>16} {'ratio':>7}")
    for r in res["chain_sampling"]:
        e, f = r["efficient_chains_per_second"], r["reference_style_chains_per_second"]
        print(f"{r['batch']:>6} {e:>16.1f} {f:>16.1f} {e / f:>7.2f}")
    lu = res["learner_update"]
    print("\nLearner update (5,000 samples x 10 transitions per minibatch), env-step samples/s")
    print(f"  critic per pair   (50,000 rows): {lu['env_step_samples_per_second_critic_per_pair']:.0f}")
    print(f"  critic per sample  (5,000 rows): {lu['env_step_samples_per_second_critic_per_sample']:.0f}")


if __name__ == "__main__":
    main()
