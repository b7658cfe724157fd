"""Backbones and heads (training side: imports torch)."""

from carelens.models._backbones import Backbone, build_backbone
from carelens.models._classifier import Classifier, MulticlassHead, build_classifier, embed_images

__all__ = ["Backbone", "Classifier", "MulticlassHead", "build_backbone", "build_classifier", "embed_images"]
