"""Image-quality metrics behind one registry: ``create_metric(name, **kw)``.

``psnr`` / ``ssim`` (Y channel, ``crop_border``), ``niqe`` (no-reference), and ``lpips`` /
``dists`` / ``fid`` when their packages and backbone weights are present (otherwise
``MetricUnavailable`` with the reason). Inputs ``(B, 3, H, W)`` in [0, 1]; outputs ``(B,)``.
"""

from flowmapsr.metrics.registry import Metric, MetricUnavailable, create_metric, list_metrics

__all__ = ["Metric", "MetricUnavailable", "create_metric", "list_metrics"]
