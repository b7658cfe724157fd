"""Backbones and heads (training side: imports torch)."""

from carelens.models._backbones import BACKBONES, Backbone, build_backbone
from carelens.models._classifier import Classifier, MulticlassHead, build_classifier

__all__ = ["BACKBONES", "Backbone", "Classifier", "MulticlassHead", "build_backbone", "build_classifier"]
