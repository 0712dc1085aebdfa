/// Offline diffusion-policy RL (docs/offline.md): Diffusion-QL and EDP trained on datasets the cluster collects,
/// in DPPO's parameterisation (the `DiffusionPolicy` of `Diffusion`), so that an offline checkpoint evaluates with
/// `dppo eval` and fine-tunes with DPPO directly.
public enum Offline {}
