#!/usr/bin/env python3
"""Writes the parity fixtures that Tests/ParityTests compares the Swift DPPO against.

The numbers come from the DPPO reference itself: this script imports the reference's
PPODiffusion, DiffusionMLP, CriticObs and EtaFixed from the directory given with
--reference (a checkout of irom-princeton/dppo, tag v0.8) and runs them on a small
network. Nothing of the reference is part of this repository.

Usage:
    python3 scripts/generate_parity_fixtures.py --reference /tmp/dppo-ref --seed 0 \
        --output Tests/ParityTests/Fixtures

It writes one folder per configuration (ddpm/, ddim/), each with
    fixture.safetensors   F32 tensors (weights in our parameter names, inputs, outputs)
    fixture.json          the configuration, scalar outputs, comparison scales, margins
Run the Swift side on any output folder with
    DPPO_FIXTURES=DIR swift test --filter Parity
Needs torch (CPU build: pip install torch==2.13.0+cpu), numpy and einops.
"""

import argparse
import contextlib
import hashlib
import json
import math
import os
import struct
import subprocess
import sys

import numpy as np
import torch

# ---------------------------------------------------------------------------------------------
# Configurations

COMMON = dict(
    obs_dim=11,
    cond_steps=1,
    action_dim=3,
    horizon_steps=4,
    act_steps=4,
    time_dim=16,
    mlp_dims=[64, 64, 64],
    critic_dims=[64, 64, 64],
    critic_activation="Mish",
    decisions=24,          # B: observations / sampled chains
    pairs=80,              # P: (decision, denoising step) pairs in the PPO minibatch
    network_rows=8,        # rows of the direct network-output check
    min_sampling_denoising_std=0.1,
    min_logprob_denoising_std=0.1,
    randn_clip_value=3.0,
    denoised_clip_value=1.0,
    gamma_denoising=0.99,
    clip_ploss_coef=0.01,
    clip_ploss_coef_base=0.001,
    clip_ploss_coef_rate=3.0,
    vf_coef=0.5,
)

CONFIGS = {
    # Gym-like: DDPM, ReLU actor, advantage quantile clipping, no value clipping.
    "ddpm": dict(
        denoising_steps=20, ft_denoising_steps=10, use_ddim=False, ddim_steps=None,
        actor_activation="ReLU", clip_vloss_coef=None,
        clip_advantage_lower_quantile=0.05, clip_advantage_upper_quantile=0.95,
    ),
    # Pixel-like: DDIM (K 100, S 5 = K'), Mish actor, value clipping, no quantile clipping.
    "ddim": dict(
        denoising_steps=100, ft_denoising_steps=5, use_ddim=True, ddim_steps=5,
        actor_activation="Mish", clip_vloss_coef=0.2,
        clip_advantage_lower_quantile=0.0, clip_advantage_upper_quantile=1.0,
    ),
}

# Smallest distance (in the quantity's own units) that an input of a non-smooth operation must keep
# from its kink, so that float32 rounding differences between two implementations cannot flip a branch.
MARGIN_THRESHOLDS = dict(
    ratio_clip=2e-5,        # | |ρ−1| − ε_j |, ρ carries errors of ~1e-6
    logprob_clamp=1e-3,     # |ℓ − (−5)| and |ℓ − 2| for scored elements, ℓ errors ~1e-5
    denoised_clamp=1e-4,    # | |x̂₀_raw| − 1 | for scored elements, x̂₀ errors ~1e-6
    value_clip=1e-4,        # | |V_new − V_old| − c |
)

SCALE_GRID = [10 ** (e / 8) for e in range(-32, 1)]   # 1e-4 … 1, candidates for θ_new − θ_old
TARGET_CLIPFRAC = 0.5
MAX_ATTEMPTS = 40

# ---------------------------------------------------------------------------------------------
# Reference import and parameter-name mapping


def import_reference(directory):
    directory = os.path.abspath(directory)
    sys.path.insert(0, directory)
    from model.diffusion.diffusion_ppo import PPODiffusion
    from model.diffusion.mlp_diffusion import DiffusionMLP
    from model.common.critic import CriticObs
    from model.diffusion.eta import EtaFixed
    return PPODiffusion, DiffusionMLP, CriticObs, EtaFixed


def reference_version(directory, label):
    files = ["model/diffusion/diffusion_ppo.py", "model/diffusion/diffusion_vpg.py", "model/diffusion/diffusion.py",
             "model/diffusion/mlp_diffusion.py", "model/common/critic.py", "model/common/mlp.py",
             "model/diffusion/sampling.py", "model/diffusion/modules.py", "model/diffusion/eta.py"]
    digest = hashlib.sha256()
    for name in files:
        with open(os.path.join(directory, name), "rb") as handle:
            digest.update(name.encode() + b"\0" + handle.read())
    info = {"sha256_of_model_files": digest.hexdigest(), "model_files": files}

    def git(*args):
        try:
            return subprocess.run(["git", "-C", directory, *args], capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None
    commit = git("rev-parse", "HEAD")
    if commit:
        info["commit"] = commit
        tag = git("describe", "--tags", "--exact-match")
        if tag:
            info["tag"] = tag
    if label:
        info["label"] = label
    return info


def residual_mlp_names(reference_prefix, our_prefix, module):
    """Reference ResidualMLP (layers.0 Linear, layers.1..n residual blocks with l1/l2, then Linear) → ours."""
    linear_indices = [i for i, layer in enumerate(module.layers) if isinstance(layer, torch.nn.Linear)]
    mapping = {}
    first, last = linear_indices[0], linear_indices[-1]
    assert first == 0 and len(linear_indices) == 2
    for kind in ("weight", "bias"):
        mapping[f"{reference_prefix}.layers.{first}.{kind}"] = f"{our_prefix}.input.{kind}"
        mapping[f"{reference_prefix}.layers.{last}.{kind}"] = f"{our_prefix}.output.{kind}"
        for block in range(first + 1, last):
            mapping[f"{reference_prefix}.layers.{block}.l1.{kind}"] = f"{our_prefix}.block{block - 1}.a.{kind}"
            mapping[f"{reference_prefix}.layers.{block}.l2.{kind}"] = f"{our_prefix}.block{block - 1}.b.{kind}"
    return mapping


def actor_names(actor):
    # time_embedding = Sequential(SinusoidalPosEmb, Linear, Mish, Linear)
    mapping = {}
    for kind in ("weight", "bias"):
        mapping[f"time_embedding.1.{kind}"] = f"time_embedding.0.{kind}"
        mapping[f"time_embedding.3.{kind}"] = f"time_embedding.1.{kind}"
    mapping.update(residual_mlp_names("mlp_mean", "mlp_mean", actor.mlp_mean))
    return mapping


def critic_names(critic):
    return residual_mlp_names("Q1", "Q1", critic.Q1)


def renamed(module, mapping, prefix):
    """{prefix + our name: tensor} for every parameter of `module`; fails on any unmapped parameter."""
    result = {}
    for name, parameter in module.named_parameters():
        assert name in mapping, f"no mapping for reference parameter {name}"
        result[prefix + mapping[name]] = parameter.detach().clone()
    assert len(result) == len(mapping), "mapping names parameters the module does not have"
    return result


# ---------------------------------------------------------------------------------------------
# Output


def write_safetensors(path, tensors):
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name].detach().cpu().numpy().astype("<f4"))
        data = array.tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    header_bytes += b" " * ((8 - (8 + len(header_bytes)) % 8) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(header_bytes)))
        handle.write(header_bytes)
        for chunk in chunks:
            handle.write(chunk)


class NoiseRecorder:
    """Replaces torch.randn / torch.randn_like while the reference samples: draws from a private
    generator and keeps an unclamped copy of every draw, in call order."""

    def __init__(self, generator):
        self.generator = generator
        self.draws = []

    def _draw(self, shape, dtype):
        z = self._randn(tuple(shape), generator=self.generator, dtype=dtype or torch.float32)
        self.draws.append(z.clone())   # the reference clamps the returned tensor in place
        return z

    def randn(self, *size, **kwargs):
        if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)):
            size = size[0]
        return self._draw(size, kwargs.get("dtype"))

    def randn_like(self, tensor, **kwargs):
        return self._draw(tensor.shape, kwargs.get("dtype", tensor.dtype))

    def __enter__(self):
        self._randn, self._randn_like = torch.randn, torch.randn_like
        torch.randn, torch.randn_like = self.randn, self.randn_like
        return self

    def __exit__(self, *exc):
        torch.randn, torch.randn_like = self._randn, self._randn_like
        return False


def rms(tensor):
    return tensor.pow(2).mean().sqrt()


# ---------------------------------------------------------------------------------------------
# One configuration


def build(classes, cfg, seed):
    PPODiffusion, DiffusionMLP, CriticObs, EtaFixed = classes
    torch.manual_seed(seed)
    obs_width = cfg["obs_dim"] * cfg["cond_steps"]
    actor = DiffusionMLP(action_dim=cfg["action_dim"], horizon_steps=cfg["horizon_steps"], cond_dim=obs_width,
                         time_dim=cfg["time_dim"], mlp_dims=list(cfg["mlp_dims"]),
                         activation_type=cfg["actor_activation"], residual_style=True)
    critic = CriticObs(cond_dim=obs_width, mlp_dims=list(cfg["critic_dims"]),
                       activation_type=cfg["critic_activation"], residual_style=True)
    eta = EtaFixed(base_eta=1, min_eta=0.1, max_eta=1.0) if cfg["use_ddim"] else None
    model = PPODiffusion(
        actor=actor, critic=critic, ft_denoising_steps=cfg["ft_denoising_steps"],
        horizon_steps=cfg["horizon_steps"], obs_dim=cfg["obs_dim"], action_dim=cfg["action_dim"], device="cpu",
        denoising_steps=cfg["denoising_steps"], denoised_clip_value=cfg["denoised_clip_value"],
        randn_clip_value=cfg["randn_clip_value"], min_sampling_denoising_std=cfg["min_sampling_denoising_std"],
        min_logprob_denoising_std=cfg["min_logprob_denoising_std"], use_ddim=cfg["use_ddim"], ddim_steps=cfg["ddim_steps"],
        eta=eta, gamma_denoising=cfg["gamma_denoising"], clip_ploss_coef=cfg["clip_ploss_coef"],
        clip_ploss_coef_base=cfg["clip_ploss_coef_base"], clip_ploss_coef_rate=cfg["clip_ploss_coef_rate"],
        clip_vloss_coef=cfg["clip_vloss_coef"], clip_advantage_lower_quantile=cfg["clip_advantage_lower_quantile"],
        clip_advantage_upper_quantile=cfg["clip_advantage_upper_quantile"], norm_adv=True,
    )
    return model


def set_parameters(module, values):
    with torch.no_grad():
        for parameter, value in zip(module.parameters(), values):
            parameter.copy_(value)


def reduced_logprobs(logprobs, act_steps):
    """The loss's reduction of element-wise log-probs: clamp to [−5, 2], first Ta rows, mean."""
    return logprobs.clamp(min=-5, max=2)[:, :act_steps, :].mean(dim=(-1, -2))


def clip_coefficients(cfg, denoising_inds):
    k = cfg["ft_denoising_steps"]
    if k == 1:
        return torch.full(denoising_inds.shape, cfg["clip_ploss_coef"], dtype=torch.float64)
    u = denoising_inds.double() / (k - 1)
    rate = cfg["clip_ploss_coef_rate"]
    return cfg["clip_ploss_coef_base"] + (cfg["clip_ploss_coef"] - cfg["clip_ploss_coef_base"]) * (
        torch.exp(rate * u) - 1) / (math.exp(rate) - 1)


def denoised_raw(model, cfg, x, index, cond):
    """x̂₀ before its clamp under actor_ft, via the reference's own schedule buffers. `index` is the DDPM step t,
    or for DDIM the sampling index i into the reference's flipped DDIM arrays."""
    if cfg["use_ddim"]:
        epsilon = model.actor_ft(x, model.ddim_t[index], cond=cond)
        alpha = model.ddim_alphas[index].view(-1, 1, 1)
        return (x - model.ddim_sqrt_one_minus_alphas[index].view(-1, 1, 1) * epsilon) / alpha.sqrt()
    epsilon = model.actor_ft(x, index, cond=cond)
    return (model.sqrt_recip_alphas_cumprod[index].view(-1, 1, 1) * x
            - model.sqrt_recipm1_alphas_cumprod[index].view(-1, 1, 1) * epsilon)


def generate(classes, name, overrides, seed, output, version):
    cfg = dict(COMMON, **overrides)
    config_index = sorted(CONFIGS).index(name)
    model = build(classes, cfg, seed * 1009 + config_index)
    model.eval()
    generator = torch.Generator().manual_seed(seed * 7919 + 31 * config_index + 1)
    K, Kp = cfg["denoising_steps"], cfg["ft_denoising_steps"]
    Tp, Da, Ta = cfg["horizon_steps"], cfg["action_dim"], cfg["act_steps"]
    To, Do = cfg["cond_steps"], cfg["obs_dim"]
    B, P, R = cfg["decisions"], cfg["pairs"], cfg["network_rows"]
    steps = cfg["ddim_steps"] if cfg["use_ddim"] else K   # S: sampling steps
    # Network time of fine-tuned chain index j and the step index t = K'−1−j that the Swift API takes.
    ft_times = model.ddim_t[-Kp:] if cfg["use_ddim"] else torch.arange(Kp - 1, -1, -1)

    def randn(*shape):
        return torch.randn(*shape, generator=generator)

    def uniform(*shape):
        return torch.rand(*shape, generator=generator) * 2 - 1

    # Base (θ_base) and old fine-tuned weights (θ_old): clearly different, so a wrong "which network
    # runs which step" shows up.
    base = [p.detach().clone() for p in model.actor.parameters()]
    old = [p + 0.3 * rms(p) * randn(*p.shape) for p in base]
    set_parameters(model.actor_ft, old)

    obs = uniform(B, To, Do)
    cond = {"state": obs}

    # Rollout chains with θ_old (training noise), then displace a few decisions' chains so that the
    # [−5, 2] clamp of the element-wise log-probs binds for some elements.
    with NoiseRecorder(generator):
        chains = model(cond, deterministic=False, return_chain=True).chains.clone()
    displaced = torch.randperm(B, generator=generator)[: max(1, B // 6)]
    chains[displaced, 1:] += 0.25 * randn(len(displaced), Kp, Tp, Da)
    with torch.no_grad():
        old_logprobs_full = model.get_logprobs(cond, chains).view(B, Kp, Tp, Da)
        values = model.critic(cond).view(-1)
    returns_per_decision = values + randn(B)
    oldvalues_per_decision = values + 0.25 * randn(B)
    advantages_per_decision = 1.5 * randn(B) + 0.3

    def minibatch(pair_ids):
        decision = pair_ids // Kp
        j = pair_ids % Kp
        return dict(
            obs={"state": obs[decision]},
            chains_prev=chains[decision, j],
            chains_next=chains[decision, j + 1],
            denoising_inds=j,
            returns=returns_per_decision[decision],
            oldvalues=oldvalues_per_decision[decision],
            advantages=advantages_per_decision[decision],
            oldlogprobs=old_logprobs_full[decision, j],
            decision=decision,
        )

    def run_loss(batch, grad):
        args = {k: v for k, v in batch.items() if k != "decision"}
        args = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in args.items()}
        context = contextlib.nullcontext() if grad else torch.no_grad()
        with context:
            return model.loss(**args, use_bc_loss=False, reward_horizon=Ta)

    # Choose θ_new = θ_old + s·δ so that about half of the ratios are clipped, and so that no input of a
    # non-smooth operation sits within MARGIN_THRESHOLDS of its kink.
    chosen = None
    for attempt in range(MAX_ATTEMPTS):
        pair_ids = torch.randperm(B * Kp, generator=generator)[:P]
        batch = minibatch(pair_ids)
        direction = [rms(p) * randn(*p.shape) for p in old]
        best = None
        for scale in SCALE_GRID:
            set_parameters(model.actor_ft, [p + scale * d for p, d in zip(old, direction)])
            clipfrac = run_loss(batch, grad=False)[3]
            if best is None or abs(clipfrac - TARGET_CLIPFRAC) < abs(best[1] - TARGET_CLIPFRAC):
                best = (scale, clipfrac)
        scale = best[0]
        new = [p + scale * d for p, d in zip(old, direction)]
        set_parameters(model.actor_ft, new)
        margins = compute_margins(model, cfg, batch, ft_times)
        if all(margins[key] is None or margins[key] >= MARGIN_THRESHOLDS[key] for key in MARGIN_THRESHOLDS):
            chosen = (attempt, pair_ids, batch, scale, margins)
            break
        print(f"  {name}: attempt {attempt} rejected (margins {margins})", file=sys.stderr)
    if chosen is None:
        raise SystemExit(f"{name}: no well-conditioned batch in {MAX_ATTEMPTS} attempts")
    attempt, pair_ids, batch, scale, margins = chosen

    # The reference's loss and gradients with θ_new.
    model.actor_ft.zero_grad(set_to_none=True)
    model.critic.zero_grad(set_to_none=True)
    pg_loss, entropy_loss, v_loss, clipfrac, approx_kl, ratio_mean, bc_loss, eta_mean = run_loss(batch, grad=True)
    (pg_loss + cfg["vf_coef"] * v_loss).backward()
    actor_map, critic_map = actor_names(model.actor_ft), critic_names(model.critic)
    gradients = {}
    for module, mapping, prefix in ((model.actor_ft, actor_map, "ft."), (model.critic, critic_map, "critic.")):
        for ref_name, parameter in module.named_parameters():
            gradients[prefix + mapping[ref_name]] = parameter.grad.detach().clone() if parameter.grad is not None \
                else torch.zeros_like(parameter)
    assert all(p.grad is None for p in model.actor.parameters()), "base network received gradients"
    actor_norm = torch.sqrt(sum(g.double().pow(2).sum() for k, g in gradients.items() if k.startswith("ft."))).item()
    critic_norm = torch.sqrt(sum(g.double().pow(2).sum() for k, g in gradients.items() if k.startswith("critic."))).item()

    with torch.no_grad():
        new_logprobs = model.get_logprobs_subsample(batch["obs"], batch["chains_prev"], batch["chains_next"],
                                                    batch["denoising_inds"])
        full_logprobs = model.get_logprobs(cond, chains)
        new_values = model.critic(batch["obs"]).view(-1)
        # Scales for quantities that are differences of larger terms (see the fixtures README).
        ratio = torch.exp(reduced_logprobs(new_logprobs, Ta) - reduced_logprobs(batch["oldlogprobs"], Ta))
        advantages = batch["advantages"].clone()
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        normalized = advantages.clone()
        low = torch.quantile(advantages, cfg["clip_advantage_lower_quantile"])
        high = torch.quantile(advantages, cfg["clip_advantage_upper_quantile"])
        advantages = advantages.clamp(min=low, max=high) * torch.tensor(
            [cfg["gamma_denoising"] ** (Kp - int(j) - 1) for j in batch["denoising_inds"]])
        pg_loss_scale = (advantages * ratio).abs().mean().item()
        approx_kl_scale = (ratio - 1).abs().mean().item()

        # Direct network outputs (catch a wrong weight mapping).
        net_x = randn(R, Tp, Da)
        net_t = torch.randint(0, K, (R,), generator=generator)
        net_obs = uniform(R, To, Do)
        eps_ft = model.actor_ft(net_x, net_t, cond={"state": net_obs})
        eps_base = model.actor(net_x, net_t, cond={"state": net_obs})

        # Sampling with θ_new and recorded noise.
        samples = {}
        for mode, deterministic in (("exploration", False), ("deterministic", True)):
            with NoiseRecorder(generator) as recorder:
                sample = model(cond, deterministic=deterministic, return_chain=True)
            assert len(recorder.draws) == steps + 1, (len(recorder.draws), steps)
            samples[mode] = (torch.stack(recorder.draws), sample.chains.clone())
            assert sample.chains.shape == (B, Kp + 1, Tp, Da)

    eta_value = model.eta(cond)[0, 0].item() if cfg["use_ddim"] else None

    tensors = {}
    tensors.update(renamed(model.actor, actor_map, "base."))
    tensors.update(renamed(model.actor_ft, actor_map, "ft."))
    tensors.update(renamed(model.critic, critic_map, "critic."))
    tensors.update({
        "network.x": net_x, "network.t": net_t.float(), "network.obs": net_obs,
        "network.eps_ft": eps_ft, "network.eps_base": eps_base,
        "batch.obs": obs, "batch.values": values, "batch.chains": chains,
        "batch.logprobs": full_logprobs.view(B, Kp, Tp, Da),
        "ppo.obs": batch["obs"]["state"], "ppo.chains_prev": batch["chains_prev"], "ppo.chains_next": batch["chains_next"],
        "ppo.denoising_inds": batch["denoising_inds"].float(), "ppo.decision": batch["decision"].float(),
        "ppo.returns": batch["returns"], "ppo.oldvalues": batch["oldvalues"], "ppo.advantages": batch["advantages"],
        "ppo.oldlogprobs": batch["oldlogprobs"], "ppo.newlogprobs": new_logprobs, "ppo.newvalues": new_values,
        "ppo.ratio": ratio,
    })
    for mode, (noise, sample_chains) in samples.items():
        tensors[f"sample.{mode}.noise"] = noise
        tensors[f"sample.{mode}.chains"] = sample_chains
    for key in ("ft.mlp_mean.output.bias", "ft.time_embedding.0.bias", "critic.Q1.output.bias", "critic.Q1.input.bias"):
        tensors["grad." + key] = gradients[key]

    # Parameter counts as a mapping check.
    count = lambda module: sum(p.numel() for p in module.parameters())
    assert sum(v.numel() for k, v in tensors.items() if k.startswith("base.")) == count(model.actor)
    assert sum(v.numel() for k, v in tensors.items() if k.startswith("critic.")) == count(model.critic)

    config = dict(cfg)
    config.update(sampling_steps=steps, eta_training=eta_value, eta_deterministic=0.0 if cfg["use_ddim"] else None,
                  network_times_of_chain_index=[int(t) for t in ft_times])
    document = {
        "description": f"DPPO parity fixture '{name}' generated by scripts/generate_parity_fixtures.py",
        "reference": version,
        "seed": seed,
        "torch_version": torch.__version__,
        "config": config,
        "parameter_counts": {"actor": count(model.actor), "critic": count(model.critic)},
        "outputs": {
            "pg_loss": pg_loss.item(), "v_loss": v_loss.item(), "clipfrac": clipfrac, "approx_kl": approx_kl,
            "ratio_mean": ratio_mean, "entropy_loss": entropy_loss.item(), "eta_mean": eta_mean,
            "actor_ft_grad_norm": actor_norm, "critic_grad_norm": critic_norm,
            "total_loss": (pg_loss + cfg["vf_coef"] * v_loss).item(),
        },
        "gradient_norms": {key: value.double().norm().item() for key, value in sorted(gradients.items())},
        "scales": {
            "pg_loss": pg_loss_scale,
            "approx_kl": approx_kl_scale,
        },
        "construction": {
            "attempt": attempt,
            "new_minus_old_scale": scale,
            "base_to_old_scale": 0.3,
            "displaced_decisions": sorted(int(i) for i in displaced),
            "margins": margins,
            "margin_thresholds": MARGIN_THRESHOLDS,
            "clipped_pairs": int(round(clipfrac * P)),
            "advantage_quantile_clamped_pairs": int(((normalized < low) | (normalized > high)).sum()),
            "value_clipped_pairs": (int(((new_values - batch["oldvalues"]).abs() > cfg["clip_vloss_coef"]).sum())
                                    if cfg["clip_vloss_coef"] is not None else None),
            "logprob_elements_below_minus5": int((new_logprobs[:, :Ta] < -5).sum()),
            "sampling_noise_beyond_clip": {mode: int((noise.abs() > cfg["randn_clip_value"]).sum()) for mode, (noise, _) in samples.items()},
        },
        "tensors": {key: list(value.shape) for key, value in sorted(tensors.items())},
    }
    folder = os.path.join(output, name)
    os.makedirs(folder, exist_ok=True)
    write_safetensors(os.path.join(folder, "fixture.safetensors"), tensors)
    with open(os.path.join(folder, "fixture.json"), "w") as handle:
        json.dump(document, handle, indent=1, sort_keys=False)
        handle.write("\n")
    print(f"{name}: pg_loss {pg_loss.item():.6g}  v_loss {v_loss.item():.6g}  clipfrac {clipfrac:.3f}  "
          f"approx_kl {approx_kl:.3g}  ratio {ratio_mean:.6f}  |g_actor| {actor_norm:.4g}  |g_critic| {critic_norm:.4g}  "
          f"attempt {attempt}  scale {scale:.3g}  margins {margins}")


def compute_margins(model, cfg, batch, ft_times):
    Ta, Kp = cfg["act_steps"], cfg["ft_denoising_steps"]
    with torch.no_grad():
        new = model.get_logprobs_subsample(batch["obs"], batch["chains_prev"], batch["chains_next"], batch["denoising_inds"])
        ratio = torch.exp(reduced_logprobs(new, Ta).double() - reduced_logprobs(batch["oldlogprobs"], Ta).double())
        epsilon = clip_coefficients(cfg, batch["denoising_inds"])
        ratio_margin = ((ratio - 1).abs() - epsilon).abs().min().item()
        scored = new[:, :Ta]
        logprob_margin = torch.minimum((scored + 5).abs(), (scored - 2).abs()).min().item()
        index = (torch.arange(model.ddim_steps - Kp, model.ddim_steps)[batch["denoising_inds"]] if cfg["use_ddim"]
                 else ft_times[batch["denoising_inds"]])
        raw = denoised_raw(model, cfg, batch["chains_prev"], index, batch["obs"])[:, :Ta]
        denoised_margin = (raw.abs() - cfg["denoised_clip_value"]).abs().min().item()
        value_margin = math.inf
        if cfg["clip_vloss_coef"] is not None:
            values = model.critic(batch["obs"]).view(-1)
            value_margin = ((values - batch["oldvalues"]).abs() - cfg["clip_vloss_coef"]).abs().min().item()
    return {
        "ratio_clip": ratio_margin, "logprob_clamp": logprob_margin, "denoised_clamp": denoised_margin,
        # None without value clipping: no kink to keep away from.
        "value_clip": value_margin if math.isfinite(value_margin) else None,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, help="checkout of the DPPO reference (tag v0.8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", required=True, help="folder that receives ddpm/ and ddim/")
    parser.add_argument("--reference-label", default=None,
                        help="recorded as reference.label (e.g. 'v0.8 cc7234a…' when the checkout is not a git work tree)")
    parser.add_argument("--configs", nargs="*", default=sorted(CONFIGS), choices=sorted(CONFIGS))
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    classes = import_reference(args.reference)
    version = reference_version(os.path.abspath(args.reference), args.reference_label)
    os.makedirs(args.output, exist_ok=True)
    for name in args.configs:
        generate(classes, name, CONFIGS[name], args.seed, args.output, version)


if __name__ == "__main__":
    main()
