"""The graph a bundle ships, and the one way a network becomes ONNX."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Literal

import torch
from torch import nn

from carelens.errors import ConfigError
from carelens.models._classifier import Classifier

__all__ = ["GRAPH_OUTPUTS", "OPSET", "ShippedGraph", "export_onnx"]

OPSET = 17
GRAPH_OUTPUTS = ["logits", "features", "fmap"]  # what an image bundle's model.onnx computes (ModelIO.outputs)


class ShippedGraph(nn.Module):
    """The graph a bundle ships: logits, the gate's features and the feature map (:data:`GRAPH_OUTPUTS`).

    With ``flips``, every image is also run mirrored left-right and top-bottom (one batch of 3N views) and its logits
    and features are the mean over its three views (test-time augmentation inside the graph, so that every caller
    gets it); with ``quarter_turns`` too, over all 8 symmetries of the square (the three above, the half turn, the
    transpose and its three mirror images: the quarter turns among them; 8N views); the feature map stays the image's
    own, for its heatmap. With several ``models`` (an ensemble of runs
    trained alike), the logits are the mean over the models; the features are the first model's (the OOD gate's
    statistics live in one feature space) and the feature maps are stacked along their channels, so that the head
    weights side by side, each divided by the number of models, give the ensemble's class-activation map."""

    def __init__(self, models: Sequence[Classifier], flips: bool = False, quarter_turns: bool = False) -> None:
        super().__init__()
        if quarter_turns and not flips:
            raise ConfigError("quarter turns are averaged together with the mirror images: export with flips too")
        self.models = nn.ModuleList(models)
        self.flips, self.quarter_turns = flips, quarter_turns

    @property
    def view_kind(self) -> Literal["flips", "dihedral"] | None:
        """What the graph averages each image over (``bundle.json``'s ``model_io.views``): None, the image alone."""
        return ("dihedral" if self.quarter_turns else "flips") if self.flips else None

    @property
    def n_views(self) -> int:
        """How many views of each image the graph runs (those of :meth:`views`)."""
        return {None: 1, "flips": 3, "dihedral": 8}[self.view_kind]

    @staticmethod
    def views(x: torch.Tensor, flips: bool, quarter_turns: bool) -> list[torch.Tensor]:
        """The views of a batch (N, C, S, S) the graph averages over, the image itself first."""
        if not flips:
            return [x]
        views = [x, x.flip(3), x.flip(2)]
        if quarter_turns:  # the half turn, then the transpose and its mirror images (two of them quarter turns)
            t = x.transpose(2, 3)
            views += [x.flip(2).flip(3), t, t.flip(3), t.flip(2), t.flip(2).flip(3)]
        return views

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not self.flips and len(self.models) == 1:
            return self.models[0].forward_all(x)  # type: ignore[no-any-return, operator]
        each = self.views(x, self.flips, self.quarter_turns)
        views = len(each)
        batch = torch.cat(each) if views > 1 else x
        outs = [m.forward_all(batch) for m in self.models]  # type: ignore[operator]
        logits = [lo.reshape(views, -1, lo.shape[1]).mean(0) for lo, _, _ in outs]
        feats = outs[0][1].reshape(views, -1, outs[0][1].shape[1]).mean(0)
        fmaps = [fm.reshape(views, -1, *fm.shape[1:])[0] for _, _, fm in outs]
        if len(outs) == 1:
            return logits[0], feats, fmaps[0]
        return torch.stack(logits).mean(0), feats, torch.cat(fmaps, dim=1)

    def head(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The head's (weight, bias) for heatmaps over the shipped feature map: the models' side by side / n."""
        parts = [m.head.linear() for m in self.models]  # type: ignore[union-attr, operator]
        n = len(parts)
        return torch.cat([w for w, _ in parts], dim=1) / n, torch.stack([b for _, b in parts]).mean(0)


def export_onnx(module: nn.Module, inputs: tuple[torch.Tensor, ...], dst: Path | IO[bytes], input_names: list[str],
                output_names: list[str]) -> None:
    """Write ``module`` (in evaluation mode, traced on ``inputs``) as ONNX at opset :data:`OPSET` to ``dst`` (a file,
    or a buffer), the first axis of every input and output dynamic (the batch). The TorchScript exporter: one file,
    the weights inside (its deprecation warning silenced); traceable from inside ``torch.inference_mode``."""
    module.eval()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        inputs = tuple(t.clone() for t in inputs)  # a tensor made in inference mode cannot be traced
        torch.onnx.export(module, inputs, str(dst) if isinstance(dst, Path) else dst,  # type: ignore[arg-type]
                          input_names=input_names, output_names=output_names, opset_version=OPSET, dynamo=False,
                          dynamic_axes={n: {0: "batch"} for n in [*input_names, *output_names]})
