"""Inference: time grids and solvers, tiling, colour fix, the pipeline and the user API."""

from flowmapsr.inference.solvers import euler_solve, flowmap_solve, time_grid

__all__ = ["euler_solve", "flowmap_solve", "time_grid"]
