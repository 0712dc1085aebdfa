#!/usr/bin/env python3
"""The DPPO reference's state-dict names and shapes for the network sizes of ReferenceExportTests, from the
reference's own modules (irom-princeton/dppo: DiffusionMLP and CriticObs with residual_style=True), written as the
test's fixture. The test checks `dppo export --format reference` against it without torch or the reference.

    python3 scripts/generate_reference_names.py REFERENCE_CHECKOUT Tests/ClusterTests/Fixtures/reference-state-dict.json [COMMIT]

Needs torch (pip install torch==2.13.0+cpu) and einops. COMMIT names the reference commit when the checkout is
not a git work tree.
"""
import json
import os
import subprocess
import sys


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__.strip().splitlines()[4].strip(), file=sys.stderr)
        return 2
    reference, output = os.path.abspath(sys.argv[1]), sys.argv[2]
    sys.path.insert(0, reference)
    from model.common.critic import CriticObs
    from model.diffusion.mlp_diffusion import DiffusionMLP

    # ReferenceExportTests' sizes: Pendulum (observation 3, action 1), Tp 2, To 1, time_dim 4, two residual blocks
    # of width 16 in the actor, one of width 8 in the critic.
    actor = DiffusionMLP(action_dim=1, horizon_steps=2, cond_dim=3, time_dim=4, mlp_dims=[16, 16, 16, 16, 16],
                         activation_type="ReLU", residual_style=True)
    critic = CriticObs(cond_dim=3, mlp_dims=[8, 8, 8], activation_type="Mish", residual_style=True)
    names = {}
    for prefix, module in [("actor", actor), ("actor_ft", actor), ("critic", critic)]:
        for name, tensor in module.state_dict().items():
            names[f"{prefix}.{name}"] = list(tensor.shape)
    try:
        commit = subprocess.run(["git", "-C", reference, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    if len(sys.argv) == 4:
        commit = sys.argv[3]
    with open(output, "w") as file:
        json.dump({"reference_commit": commit or "unknown", "tensors": names}, file, indent=1, sort_keys=True)
        file.write("\n")
    print(f"wrote {len(names)} names to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
