"""Backbones and heads (training side: imports torch); the 1-D heartbeat network."""

from carelens.models._backbones import Backbone, build_backbone
from carelens.models._classifier import Classifier, MulticlassHead, MultilabelHead, build_classifier, embed_images
from carelens.models._signal import BeatNet

__all__ = ["Backbone", "BeatNet", "Classifier", "MulticlassHead", "MultilabelHead", "build_backbone", "build_classifier",
           "embed_images"]
