"""The built-in muscle models (:mod:`pinnmsk.muscle_models`): Hill muscles with a rigid or a
compliant tendon. Their curves are a class attribute (:class:`pinnmsk.muscle.Curves`, De Groote
et al. 2016's by default): a model with other curves is a subclass that sets ``curves`` and one
:func:`pinnmsk.muscle_models.register` call."""

from __future__ import annotations

from pinnmsk import muscle
from pinnmsk.shapes import MuscleVec


class RigidTendon:
    """The tendon at its slack length: the fibre takes the whole musculotendon length."""

    curves: muscle.Curves = muscle.DE_GROOTE

    def force(self, a: MuscleVec, l_mt_m: MuscleVec, ldot_mt_mps: MuscleVec,
              params: muscle.MuscleParams) -> MuscleVec:
        return muscle.hill_force(a, l_mt_m, ldot_mt_mps, params, self.curves)

    def residual(self, f_n: MuscleVec, fdot_nps: MuscleVec, a: MuscleVec, l_mt_m: MuscleVec,
                 ldot_mt_mps: MuscleVec, params: muscle.MuscleParams) -> MuscleVec:
        return f_n - self.force(a, l_mt_m, ldot_mt_mps, params)


class CompliantTendon:
    """A stretching tendon (its curve in ``curves``) in equilibrium with the fibre."""

    curves: muscle.Curves = muscle.DE_GROOTE

    def force(self, a: MuscleVec, l_mt_m: MuscleVec, ldot_mt_mps: MuscleVec,
              params: muscle.MuscleParams) -> MuscleVec:
        return muscle.equilibrium_tendon_force(a, l_mt_m, ldot_mt_mps, params,
                                               curves=self.curves)[0]

    def residual(self, f_n: MuscleVec, fdot_nps: MuscleVec, a: MuscleVec, l_mt_m: MuscleVec,
                 ldot_mt_mps: MuscleVec, params: muscle.MuscleParams) -> MuscleVec:
        return muscle.tendon_equilibrium_residual(f_n, fdot_nps, a, l_mt_m, ldot_mt_mps, params,
                                                  curves=self.curves)
