"""Backbones and heads (training side: imports torch)."""

from carelens.models._backbones import Backbone, build_backbone
from carelens.models._classifier import Classifier, MulticlassHead, MultilabelHead, build_classifier, embed_images

__all__ = ["Backbone", "Classifier", "MulticlassHead", "MultilabelHead", "build_backbone", "build_classifier",
           "embed_images"]
