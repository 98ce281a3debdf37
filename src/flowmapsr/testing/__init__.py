"""Analytic flows for checking objectives, solvers and JVPs against closed-form answers."""

from flowmapsr.testing.gaussian import GaussianFlow, GuidedGaussianFlow, StraightGaussianFlow

__all__ = ["GaussianFlow", "GuidedGaussianFlow", "StraightGaussianFlow"]
