"""The built-in muscle models (:mod:`pinnmsk.muscle_models`): Hill muscles with De Groote et
al. 2016's curves (:mod:`pinnmsk.muscle`), with a rigid or a compliant tendon."""

from __future__ import annotations

from pinnmsk import muscle
from pinnmsk.shapes import MuscleVec


class RigidTendon:
    """The tendon at its slack length: the fibre takes the whole musculotendon length."""

    def force(self, a: MuscleVec, l_mt_m: MuscleVec, ldot_mt_mps: MuscleVec,
              params: muscle.MuscleParams) -> MuscleVec:
        return muscle.hill_force(a, l_mt_m, ldot_mt_mps, params)

    def residual(self, f_n: MuscleVec, fdot_nps: MuscleVec, a: MuscleVec, l_mt_m: MuscleVec,
                 ldot_mt_mps: MuscleVec, params: muscle.MuscleParams) -> MuscleVec:
        return f_n - self.force(a, l_mt_m, ldot_mt_mps, params)


class CompliantTendon:
    """A stretching tendon (De Groote's tendon curve) in equilibrium with the fibre."""

    def force(self, a: MuscleVec, l_mt_m: MuscleVec, ldot_mt_mps: MuscleVec,
              params: muscle.MuscleParams) -> MuscleVec:
        return muscle.equilibrium_tendon_force(a, l_mt_m, ldot_mt_mps, params)[0]

    def residual(self, f_n: MuscleVec, fdot_nps: MuscleVec, a: MuscleVec, l_mt_m: MuscleVec,
                 ldot_mt_mps: MuscleVec, params: muscle.MuscleParams) -> MuscleVec:
        return muscle.tendon_equilibrium_residual(f_n, fdot_nps, a, l_mt_m, ldot_mt_mps, params)
