"""Synthetic datasets with known labels: multi-label skin conditions in the skin-condition folder layout, and
dog skin cases with a photo and owner-reported symptoms each (the image + symptom fusion benchmark).

Each condition is drawn as its own kind of mark on a skin-toned background; how many marks and how large
they are set its severity. Labels are known by construction (never inferred from pixels), so the data
tests whether the machinery recovers them: the fixture for tests and the ``multilabel_synth`` benchmark.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from carelens.errors import ConfigError

__all__ = ["DOG_SKIN", "SYNTH_CONDITIONS", "synthetic_skin_image", "write_synthetic_dog_cases", "write_synthetic_multilabel"]

SYNTH_CONDITIONS: dict[str, tuple[str, str, str]] = {  # condition -> its severity levels, mildest first
    "acne": ("mild", "moderate", "severe"),
    "aging": ("early_signs", "moderate", "advanced"),
    "fine_lines_wrinkles": ("mild", "moderate", "severe"),
    "hyperpigmentation": ("mild", "moderate", "severe"),
    "pore_size": ("mild", "moderate", "severe"),
    "redness": ("mild", "moderate", "severe"),
    "textured_skin": ("slight", "moderate", "severe"),
}
HEALTHY = ("clear_skin", "minimal_concerns", "well_maintained")
TONES = {"light": (236, 200, 175), "medium": (198, 150, 110), "dark": (120, 82, 58)}
Draw = Callable[[ImageDraw.ImageDraw, np.random.Generator, int, int], None]


def _xy(rng: np.random.Generator, size: int, margin: int) -> tuple[int, int]:
    return int(rng.integers(margin, size - margin)), int(rng.integers(margin, size - margin))


def _acne(d: ImageDraw.ImageDraw, rng: np.random.Generator, level: int, size: int) -> None:
    r = size // 40 + level
    for _ in range((2, 5, 9)[level]):
        x, y = _xy(rng, size, r + 1)
        d.ellipse((x - r, y - r, x + r, y + r), fill=(200, 30, 40))


def _aging(d: ImageDraw.ImageDraw, rng: np.random.Generator, level: int, size: int) -> None:
    r = size // 10 + 2 * level
    for _ in range((1, 2, 4)[level]):
        x, y = _xy(rng, size, r + 1)
        d.ellipse((x - r, y - r, x + r, y + r), outline=(240, 220, 90), width=2)


def _lines(d: ImageDraw.ImageDraw, rng: np.random.Generator, level: int, size: int) -> None:
    length = size // 6 + size // 16 * level
    for _ in range((2, 5, 9)[level]):
        x, y = _xy(rng, size, length // 2 + 1)
        d.line((x - length // 2, y - length // 4, x + length // 2, y + length // 4), fill=(60, 40, 30), width=1)


def _pigment(d: ImageDraw.ImageDraw, rng: np.random.Generator, level: int, size: int) -> None:
    r = size // 18 + 2 * level
    for _ in range((1, 3, 6)[level]):
        x, y = _xy(rng, size, r + 1)
        d.ellipse((x - r, y - r // 2 - 1, x + r, y + r // 2 + 1), fill=(90, 55, 25))


def _pores(d: ImageDraw.ImageDraw, rng: np.random.Generator, level: int, size: int) -> None:
    for _ in range((8, 18, 32)[level]):
        x, y = _xy(rng, size, 2)
        d.rectangle((x, y, x + 1, y + 1), fill=(20, 20, 20))


def _redness(d: ImageDraw.ImageDraw, rng: np.random.Generator, level: int, size: int) -> None:
    w = int(size * (0.22, 0.36, 0.52)[level])
    x, y = _xy(rng, size, w // 2 + 1)
    d.rectangle((x - w // 2, y - w // 3, x + w // 2, y + w // 3), fill=(235, 95, 110))


def _texture(d: ImageDraw.ImageDraw, rng: np.random.Generator, level: int, size: int) -> None:
    w = int(size * (0.2, 0.32, 0.46)[level])
    x0, y0 = _xy(rng, size, w // 2 + 1)
    for i in range(0, w, 3):
        d.line((x0 - w // 2 + i, y0 - w // 2, x0 - w // 2 + i, y0 + w // 2), fill=(245, 245, 245), width=1)


DRAWERS: dict[str, Draw] = {"acne": _acne, "aging": _aging, "fine_lines_wrinkles": _lines,
                            "hyperpigmentation": _pigment, "pore_size": _pores, "redness": _redness,
                            "textured_skin": _texture}
# drawn in this order so that large patches (redness, texture) never hide the small marks
ORDER = ("redness", "textured_skin", "hyperpigmentation", "aging", "acne", "fine_lines_wrinkles", "pore_size")


def _image(rng: np.random.Generator, findings: dict[str, int], tone: str, size: int) -> Image.Image:
    base = np.asarray(TONES[tone], np.float64)[None, None, :] + rng.normal(0, 6, (size, size, 1))
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for cond in ORDER:
        if cond in findings:
            DRAWERS[cond](d, rng, findings[cond], size)
    return img


def synthetic_skin_image(findings: dict[str, str], seed: int = 0, size: int = 128, tone: str = "medium") -> np.ndarray:
    """One generated image showing ``findings`` (condition -> severity level), as uint8 RGB."""
    levels = {c: SYNTH_CONDITIONS[c].index(lv) for c, lv in findings.items()}
    return np.asarray(_image(np.random.default_rng(seed), levels, tone, size))


def write_synthetic_multilabel(out: str | Path, n: int = 600, seed: int = 0, *, size: int = 96,
                               healthy_share: float = 0.15, twin_share: float = 0.1,
                               short_share: float = 0.2) -> Path:
    """Write ``n`` images (plus mirrored twins) as ``out/<condition>/<severity>/<name>.png`` + ``.json``.

    Each image shows 1-3 conditions (``healthy_share`` none), each at a uniformly drawn severity. A share of
    single-condition images carries only the short annotation (``skin_condition`` + ``severity``); a share
    gets a ``_flipped`` mirrored twin with the same labels.
    """
    if n < 1 or size < 32:
        raise ConfigError(f"need n >= 1 and size >= 32, got n={n}, size={size}")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = list(SYNTH_CONDITIONS)
    counts: Counter[str] = Counter()
    written = 0
    for i in range(n):
        if rng.random() < healthy_share:
            chosen: dict[str, int] = {}
        else:
            k = int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2]))
            chosen = {str(c): int(rng.integers(0, 3)) for c in rng.choice(names, size=k, replace=False)}
        tone = str(rng.choice(list(TONES)))
        demographics = {"age_group": str(rng.choice(["18-29", "30-44", "45-59", "60+"])), "skin_tone": tone,
                        "gender": str(rng.choice(["female", "male"]))}
        img = _image(rng, chosen, tone, size)
        if chosen:
            primary = max(chosen, key=lambda c: (chosen[c], c))
            folder = root / primary / SYNTH_CONDITIONS[primary][chosen[primary]]
        else:
            primary = "healthy"
            folder = root / "healthy" / HEALTHY[int(rng.integers(0, 3))]
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"synth_{i:05d}"
        doc: dict[str, Any] = {"image_filename": f"{stem}.png", "skin_condition": primary,
                               "severity": SYNTH_CONDITIONS[primary][chosen[primary]] if chosen else folder.name}
        if len(chosen) > 1 or rng.random() >= short_share:
            doc["classification_targets"] = {c: c in chosen for c in names}
            doc["severity_targets"] = {c: SYNTH_CONDITIONS[c][chosen[c]] if c in chosen else "none" for c in names}
            doc["demographics"] = demographics
            doc["training_annotations"] = {"n_conditions": len(chosen), "generator": "carelens synth", "seed": seed}
        else:
            doc["annotations"] = {"generator": "carelens synth"}
        twins = [(stem, img)]
        if rng.random() < twin_share:
            twins.append((f"{stem}_flipped", img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
        for name, picture in twins:
            picture.save(folder / f"{name}.png")
            (folder / f"{name}.json").write_text(json.dumps({**doc, "image_filename": f"{name}.png"}, indent=1))
            written += 1
            counts.update(chosen or {"healthy": 1})
    summary = {"images": written, "seed": seed, "size": size, "per_condition": dict(sorted(counts.items())),
               "conditions": {c: list(v) for c, v in SYNTH_CONDITIONS.items()}}
    (root / f"dataset_summary_seed{seed}.json").write_text(json.dumps(summary, indent=1))
    return root


# -- a generated dog dataset: photos and owner-reported symptoms of the same cases ---------------------------
# class id -> (the mark its photo shows (a DRAWERS key, None: clear skin), the class whose mark a photo of it
# shows instead in a share of cases, {symptom id: probability the dog has it}). The photo cannot tell the
# two classes of a pair apart in that share; the symptoms can, but they confuse other classes with each other:
# each source alone is unsure in a known way, and together they are not.
DOG_SKIN: dict[str, tuple[str | None, str, dict[str, float]]] = {
    "healthy_skin": (None, "skin_mass", {"itching": 0.1, "scaly_skin": 0.15}),
    "allergic_dermatitis": ("acne", "hot_spot", {"itching": 0.9, "paw_licking": 0.6, "hair_loss": 0.4, "red_skin": 0.4,
                                                 "crusts_on_skin": 0.15, "vomiting": 0.15}),
    "hot_spot": ("redness", "allergic_dermatitis", {"licking_one_spot": 0.7, "pain_on_touch": 0.5, "swelling": 0.5,
                                                    "red_skin": 0.3, "moist_skin_lesion": 0.3, "skin_odour": 0.2}),
    "ringworm": ("aging", "mange", {"scaly_skin": 0.5, "hair_loss": 0.4, "itching": 0.15, "circular_hair_loss": 0.2}),
    "mange": ("textured_skin", "ringworm", {"itching": 0.9, "hair_loss": 0.6, "paw_licking": 0.3, "crusts_on_skin": 0.4,
                                            "red_skin": 0.3, "thickened_skin": 0.15}),
    "skin_mass": ("hyperpigmentation", "healthy_skin", {"swelling": 0.7, "licking_one_spot": 0.4, "lump_under_skin": 0.4,
                                                        "pain_on_touch": 0.2, "lethargy": 0.15}),
}
DOG_SHARES = {"healthy_skin": 0.22, "allergic_dermatitis": 0.2, "hot_spot": 0.14, "ringworm": 0.12, "mange": 0.14,
              "skin_mass": 0.18}


def _dog_symptoms(rng: np.random.Generator, label: str) -> list[str]:
    return [s for s, p in DOG_SKIN[label][2].items() if rng.random() < p]


def write_synthetic_dog_cases(out: str | Path, n: int = 900, seed: int = 0, *, size: int = 96, clarity: float = 0.6,
                              table_rows: int = 1200, splits: tuple[float, float, float] = (0.5, 0.25, 0.25)) -> Path:
    """Write a generated dog skin dataset with known structure (labels by construction, never from pixels).

    * ``images/<class>/dog_NNNNN.png`` and ``cases.csv`` (``path, label, symptoms, split``): each case's photo
      shows its own class's mark with probability ``clarity``, else its pair partner's (see ``DOG_SKIN``); the
      owner reports 1-3 of the symptoms the dog has (``;``-separated ids; none for some), drawn independently
      of the photo given the class;
    * ``symptom_table.csv`` (``Disease, Symptom 1..n``): ``table_rows`` other cases with every symptom the dog
      has, for building the symptom model.

    Splits are fixed in ``cases.csv`` (``splits`` = train, val, test shares) so that the image model, the
    fusion weights (fitted on val) and the figures (test) never see the same case twice.
    """
    if n < 30 or size < 32 or not 0 < clarity <= 1:
        raise ConfigError(f"need n >= 30, size >= 32 and 0 < clarity <= 1; got n={n}, size={size}, clarity={clarity}")
    root = Path(out)
    rng = np.random.default_rng(seed)
    classes, shares = list(DOG_SHARES), np.asarray(list(DOG_SHARES.values()))
    rows: list[dict[str, str]] = []
    for i in range(n):
        label = str(rng.choice(classes, p=shares / shares.sum()))
        mark, partner, _ = DOG_SKIN[label]
        shown = mark if rng.random() < clarity else DOG_SKIN[partner][0]
        img = _image(rng, {shown: 2 if shown == "hyperpigmentation" else 1} if shown else {},
                     str(rng.choice(list(TONES))), size)
        has = _dog_symptoms(rng, label)
        k = min(len(has), int(rng.integers(1, 4)))
        told = sorted(rng.choice(has, size=k, replace=False).tolist()) if k else []
        rel = f"images/{label}/dog_{i:05d}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        img.save(root / rel)
        split = str(rng.choice(["train", "val", "test"], p=list(splits)))
        rows.append({"path": rel, "label": label, "symptoms": ";".join(told), "split": split})
    _write_csv(root / "cases.csv", rows)
    table = []
    for _ in range(table_rows):
        label = str(rng.choice(classes, p=shares / shares.sum()))
        has = _dog_symptoms(rng, label) or [max(DOG_SKIN[label][2], key=DOG_SKIN[label][2].__getitem__)]
        table.append({"Disease": label, **{f"Symptom {j + 1}": s for j, s in enumerate(has)}})
    _write_csv(root / "symptom_table.csv", table)
    return root


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, restval="")
        w.writeheader()
        w.writerows(rows)
