"""Backbones and heads (training side: imports torch); the 1-D ECG networks (heartbeats, whole recordings)."""

from carelens.models._backbones import Backbone, build_backbone
from carelens.models._classifier import Classifier, MulticlassHead, MultilabelHead, build_classifier, embed_images
from carelens.models._onnx import GRAPH_OUTPUTS, OPSET, ShippedGraph, export_onnx
from carelens.models._signal import BeatNet, RecordNet

__all__ = ["GRAPH_OUTPUTS", "OPSET", "Backbone", "BeatNet", "Classifier", "MulticlassHead", "MultilabelHead", "RecordNet",
           "ShippedGraph", "build_backbone", "build_classifier", "embed_images", "export_onnx"]
