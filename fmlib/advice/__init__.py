"""Which of the benchmark's models to use on a user's own images (`advise`), and the report of it
(`write_report`: report.html, advice.json and the recommended model as TorchScript)."""

from .core import Advice, advise, candidates, export_torchscript, recommended_model
from .inputs import MIN_SIDE_PX, read_images
from .realism_check import THRESHOLDS

__all__ = ["Advice", "advise", "candidates", "export_torchscript", "recommended_model", "read_images",
           "MIN_SIDE_PX", "THRESHOLDS"]
