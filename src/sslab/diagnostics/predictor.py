"""Predictor dynamics of Tian, Chen, Ganguli 2021 (spec §A.1, §E), from F̂ (the correlation of the
predictor's input) and the linear predictor Wp.

In the eigenbasis F̂ = U diag(s) Uᵀ, Theorem 3 says Wp aligns with F̂ ([F̂, Wp] → 0), the
antisymmetric part of Wp vanishes, and with weight decay the modes settle on the invariant
parabola s_j = p_j²/α_p (Eqn 14), p_j = u_jᵀ Wp u_j.
"""

from __future__ import annotations

import torch

#: a mode of F̂ is live when s_j / s_max exceeds this: below it the mode carries no signal, and its
#: eigenvector (and so its alignment) is set by rounding (the claims study's "alignment over the live modes")
LIVE_FRACTION = 1e-3


def live_alignment(s, alignment, fraction: float = LIVE_FRACTION) -> float:
    """Mean cos(u_j, Wp u_j) over the live modes, s_j / s_max > ``fraction`` (Tian et al. Thm 3 predicts
    alignment of the modes that carry signal; averaged over all D modes, a rank-12 F̂ at D = 128 would
    read ≈ 0.1 even when every live mode is aligned)."""
    s, alignment = torch.as_tensor(s, dtype=torch.float64), torch.as_tensor(alignment, dtype=torch.float64)
    live = s > fraction * s.max().clamp(min=0)
    return float(alignment[live].mean()) if bool(live.any()) else float("nan")


def predictor_stats(corr: torch.Tensor, wp: torch.Tensor, alpha_p: float = 1.0) -> dict[str, torch.Tensor | float]:
    """Diagnostics of (F̂, Wp), both ``(d, d)``, in float64.

    ``s`` eigenvalues of F̂ (descending) with eigenvectors u_j; ``p`` = u_jᵀWp u_j;
    ``wp_eigenvalues`` of the symmetric part of Wp (descending); ``alignment`` cos(u_j, Wp u_j) =
    u_jᵀWp u_j / ‖Wp u_j‖ per mode (1 when aligned); ``commutator`` ‖F̂Wp − WpF̂‖_F / (‖F̂‖_F ‖Wp‖_F);
    ``asymmetry`` ‖(Wp − Wpᵀ)/2‖_F / ‖Wp‖_F; ``parabola`` p_j²/α_p per mode, to compare with s_j
    (up to the scale of F̂: Eqn 14 holds for the unnormalised loss).
    """
    f, w = corr.detach().double(), wp.detach().double()
    s, u = torch.linalg.eigh(f)
    s, u = s.flip(0), u.flip(1)
    wu = w @ u
    p = (u * wu).sum(0)
    tiny = torch.finfo(torch.float64).tiny
    return {
        "s": s,
        "p": p,
        "wp_eigenvalues": torch.linalg.eigvalsh((w + w.T) / 2).flip(0),
        "alignment": p / wu.norm(dim=0).clamp(min=tiny),
        "commutator": float(torch.linalg.matrix_norm(f @ w - w @ f) / (f.norm() * w.norm()).clamp(min=tiny)),
        "asymmetry": float(((w - w.T) / 2).norm() / w.norm().clamp(min=tiny)),
        "parabola": p.pow(2) / alpha_p,
    }
