"""Shape-typed array aliases for the physics and model APIs (jaxtyping; documentation that
``typing.get_type_hints`` resolves and a runtime checker can enforce).

Dimension names: ``n`` generalised coordinates, ``M`` muscles (one EMG channel each), ``K``
polynomial monomials, ``T`` time samples, ``W`` window samples, ``H`` the window's labelled
history samples, ``P`` query times τ, ``L`` latent size, ``B`` windows in a batch, ``*b`` any
leading batch axes (vmap-able functions are written for one sample). SI units are in the argument
names (``_m``, ``_n``, ``_rad``...).
"""

from __future__ import annotations

from jaxtyping import Array, Float, Int

Scalar = Float[Array, ""]
Coords = Float[Array, "n"]  # q [rad], q̇ [rad/s], q̈ [rad/s²] or a torque [N m] per coordinate
MuscleVec = Float[Array, "*b M"]  # one value per muscle (element-wise functions: any batch)
MomentArms = Float[Array, "M n"]  # r = −∂l_mt/∂q [m]
MassMatrix = Float[Array, "n n"]  # [kg m²]
MuscleSeries = Float[Array, "T M"]  # a per-muscle signal over time
Motion = Float[Array, "T n"]  # a per-coordinate signal over time (q, q̇, q̈ or a torque)
ArmSeries = Float[Array, "T M n"]  # moment arms along a motion [m]

# the network and the losses (pinnmsk.models, pinnmsk.losses, pinnmsk.train)
EmgWindow = Float[Array, "W M"]  # normalised EMG envelope, one window
Latent = Float[Array, "L"]  # the encoder's output for one window
QueryTimes = Float[Array, "P"]  # τ ≤ 0 [s], relative to the window's end
CoordSeries = Float[Array, "P n"]  # q (or a derivative) at P times
ForceSeries = Float[Array, "P M"]  # F [N] at P times
LatentBatch = Float[Array, "B L"]
EmgBatch = Float[Array, "B W M"]
CoordBatch = Float[Array, "B n"]  # predictions at τ = 0
ForceBatch = Float[Array, "B M"]
CoordHistory = Float[Array, "*b H n"]  # labelled angles over a window's history [rad]
ForceHistory = Float[Array, "*b H M"]  # labelled forces over a window's history [N]
Activation = Float[Array, "A M"]  # activation over a window's last A samples
TermVector = Float[Array, "n_terms"]  # the loss terms in pinnmsk.terms.names() order
PerWindow = Float[Array, "B"]
Subjects = Int[Array, "*b"]  # subject index per window
