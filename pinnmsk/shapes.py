"""Shape-typed array aliases for the physics and model APIs (jaxtyping; documentation that
``typing.get_type_hints`` resolves and a runtime checker can enforce).

Dimension names: ``n`` generalised coordinates, ``M`` muscles, ``K`` polynomial monomials,
``T`` time samples, ``W`` window samples, ``*b`` any leading batch axes (vmap-able functions are
written for one sample). SI units are in the argument names (``_m``, ``_n``, ``_rad``...).
"""

from __future__ import annotations

from jaxtyping import Array, Float

Scalar = Float[Array, ""]
Coords = Float[Array, "n"]  # q [rad], q̇ [rad/s], q̈ [rad/s²] or a torque [N m] per coordinate
MuscleVec = Float[Array, "*b M"]  # one value per muscle (element-wise functions: any batch)
MomentArms = Float[Array, "M n"]  # r = −∂l_mt/∂q [m]
MassMatrix = Float[Array, "n n"]  # [kg m²]
MuscleSeries = Float[Array, "T M"]  # a per-muscle signal over time
