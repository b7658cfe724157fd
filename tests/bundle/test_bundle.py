from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from carelens.bundle import FORMAT_VERSION, BundleSpec, load_bundle
from carelens.cli import app
from carelens.errors import BundleError, ConfigError, NotAnImageError
from carelens.hashing import canonical_digest
from carelens.predict import Engine
from carelens.preprocess import PreprocessConfig
from carelens.steps import calibrate_run
from carelens.steps.export import export_run


@pytest.fixture(scope="module")
def bundle_dir(tiny_pneumonia_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    calibrate_run(tiny_pneumonia_run)
    return export_run(tiny_pneumonia_run, tmp_path_factory.mktemp("b") / "bundle", name="chest", version="1.0")


def _copy(src: Path, tmp: Path) -> Path:
    dst = tmp / "copy"
    shutil.copytree(src, dst)
    return dst


def test_round_trip_parity_and_contents(bundle_dir: Path) -> None:
    doc = json.loads((bundle_dir / "bundle.json").read_text())
    assert doc["parity"]["max_abs_logit_diff"] <= 1e-4 and doc["parity"]["identical_decisions"]
    assert doc["parity"]["images"] == 16
    assert set(doc["files"]) == {"model.onnx", "ood.npz", "head.npz"}
    assert doc["class_ids"] == ["normal", "pneumonia"] and doc["preprocess"]["image_size"] == 28
    assert 0.05 < doc["temperature"] < 20 and doc["data_fingerprint"]
    b = load_bundle(bundle_dir)
    assert (b.name, b.version) == ("chest", "1.0")


def test_tampered_files_are_refused(bundle_dir: Path, tmp_path: Path) -> None:
    onnx_copy = _copy(bundle_dir, tmp_path / "a")
    with (onnx_copy / "model.onnx").open("r+b") as f:
        f.seek(-100, 2)
        f.write(b"\x00" * 8)
    with pytest.raises(BundleError, match="model.onnx .* does not match its recorded sha256"):
        load_bundle(onnx_copy)
    json_copy = _copy(bundle_dir, tmp_path / "b")
    doc = json.loads((json_copy / "bundle.json").read_text())
    doc["temperature"] = 0.5  # a hand edit that would silently change every probability
    (json_copy / "bundle.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="modified after export"):
        load_bundle(json_copy)


def test_future_format_is_refused_with_advice(bundle_dir: Path, tmp_path: Path) -> None:
    c = _copy(bundle_dir, tmp_path)
    doc = json.loads((c / "bundle.json").read_text())
    doc["format_version"] = 99
    (c / "bundle.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="format version 99, newer .* Upgrade carelens"):
        load_bundle(c)


def test_format_1_bundle_without_facts_still_loads(bundle_dir: Path, tmp_path: Path) -> None:
    c = _copy(bundle_dir, tmp_path)
    doc = json.loads((c / "bundle.json").read_text())
    assert doc["format_version"] == FORMAT_VERSION == 13 and doc["facts"] is None  # no clinical facts in PneumoniaMNIST
    assert "temperature_bias" not in doc  # the default scaler is the temperature alone: nothing written
    assert doc["task"] == "multiclass" and "multilabel" not in doc
    del doc["facts"], doc["integrity"]
    doc["format_version"] = 1  # exactly what carelens wrote before facts existed
    doc["integrity"] = canonical_digest(doc)
    (c / "bundle.json").write_text(json.dumps(doc))
    b = load_bundle(c)
    assert b.spec.format_version == 1 and b.facts is None
    doc["format_version"] = 0
    doc["integrity"] = canonical_digest({k: v for k, v in doc.items() if k != "integrity"})
    (c / "bundle.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="old format version 0"):
        load_bundle(c)


def test_class_biases_in_the_bundle_are_applied(bundle_dir: Path, tmp_path: Path) -> None:
    c = _copy(bundle_dir, tmp_path)
    doc = json.loads((c / "bundle.json").read_text())
    del doc["integrity"]
    doc["temperature_bias"] = [0.0, -3.0]  # what `calibrate --scaler auto` ships when validation prefers it
    doc["integrity"] = canonical_digest(doc)
    (c / "bundle.json").write_text(json.dumps(doc))
    x = np.random.default_rng(0).integers(0, 255, (4, 28, 28, 3), dtype=np.uint8)
    plain, biased = Engine(load_bundle(bundle_dir)).infer(list(x)), Engine(load_bundle(c)).infer(list(x))
    t = doc["temperature"]
    expected = np.exp(plain.logits / t + np.array([0.0, -3.0]))
    np.testing.assert_allclose(biased.proba, expected / expected.sum(1, keepdims=True), rtol=1e-5)
    assert (biased.proba[:, 1] < plain.proba[:, 1]).all()


def test_format_3_bundle_without_a_decision_rule_still_loads(bundle_dir: Path, tmp_path: Path) -> None:
    c = _copy(bundle_dir, tmp_path)
    doc = json.loads((c / "bundle.json").read_text())
    del doc["decision"]["critical_threshold"], doc["integrity"]
    doc["format_version"] = 3  # what carelens wrote before the critical-probability rule existed
    doc["integrity"] = canonical_digest(doc)
    (c / "bundle.json").write_text(json.dumps(doc))
    b = load_bundle(c)
    assert b.spec.format_version == 3 and b.policy().critical_threshold is None


def test_bundle_json_written_before_the_relayering_still_reads() -> None:
    """bundle.json of the PneumoniaMNIST benchmark bundle, exported by commit f4a8ae0 (before bundle.json's
    sections were typed): it validates, its integrity digest verifies, and every section reads as written."""
    raw = json.loads((Path(__file__).parent / "fixtures" / "bundle_format2_f4a8ae0.json").read_text())
    spec = BundleSpec.model_validate(raw)
    assert spec.integrity == canonical_digest({k: v for k, v in raw.items() if k != "integrity"})
    assert spec.label_spec.class_ids == raw["class_ids"] == ["normal", "pneumonia"]
    assert spec.preprocess.image_size == raw["preprocess"]["image_size"] == 28
    assert spec.model_io.outputs == ["logits", "features", "fmap"] and spec.ood.method == "combined"
    assert spec.conformal.thresholds == raw["conformal"]["thresholds"] and spec.split is not None
    assert spec.split.assignment_sha256 == raw["split"]["assignment_sha256"] and spec.facts is None
    # written again, the document is the same one, so a re-export keeps the same integrity for the same content
    assert {k: v for k, v in spec.document().items() if k != "integrity"} == \
        {k: v for k, v in raw.items() if k != "integrity"}


def test_facts_for_a_model_trained_without_them_are_an_error(bundle_dir: Path) -> None:
    from carelens.errors import ConfigError
    from carelens.predict import Engine

    engine = Engine(load_bundle(bundle_dir))
    image = np.zeros((28, 28), np.uint8)
    assert engine.assess([image], facts=[None])[0][0].based_on == ["image"]
    with pytest.raises(ConfigError, match="trained without clinical facts"):
        engine.assess([image], facts=[{"age": 3}])


def test_zip_is_accepted(bundle_dir: Path, tmp_path: Path) -> None:
    archive = shutil.make_archive(str(tmp_path / "chest"), "zip", root_dir=bundle_dir)
    assert load_bundle(archive).name == "chest"


def test_predict_cli_reports_corrupt_files_and_continues(bundle_dir: Path, tmp_path: Path, pneumonia_npz: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    with np.load(pneumonia_npz) as z:
        for k in range(5):
            Image.fromarray(z["test_images"][k]).save(folder / f"x{k}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    res = CliRunner().invoke(app, ["predict", str(bundle_dir), str(folder), "--out", str(tmp_path / "res.txt")])
    assert res.exit_code == 1 and "results are written as .jsonl or .csv" in res.output  # not JSON lines under .txt
    out = tmp_path / "results" / "res.jsonl"  # its folder is made
    res = CliRunner().invoke(app, ["predict", str(bundle_dir), str(folder), "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6
    bad = [r for r in rows if "error" in r]
    assert len(bad) == 1 and bad[0]["input"].endswith("broken.png")
    good = [r["assessment"] for r in rows if "assessment" in r]
    assert all(abs(sum(t["probability"] for t in a["top"]) - 1) < 1e-3 for a in good)
    assert all(a["triage"]["level"] in ("self_care", "consultation", "consultation_24") for a in good)
    csv_out = tmp_path / "res.csv"
    res = CliRunner().invoke(app, ["predict", str(bundle_dir), str(folder), "--out", str(csv_out)])
    assert res.exit_code == 0 and csv_out.read_text().count("\n") == 7
    # batches of 2: three of them, scored in two lanes; the same rows in the same order
    laned = tmp_path / "laned.jsonl"
    res = CliRunner().invoke(app, ["predict", str(bundle_dir), str(folder), "--out", str(laned), "--batch-size", "2"])
    assert res.exit_code == 0, res.output
    again = [json.loads(line) for line in laned.read_text().splitlines()]
    assert [r["input"] for r in again] == [r["input"] for r in rows]
    assert [("error" in r, r.get("assessment", {}).get("triage", {}).get("level")) for r in again] == \
        [("error" in r, r.get("assessment", {}).get("triage", {}).get("level")) for r in rows]


def test_lanes_answer_as_one_lane_in_order_with_bounded_memory(bundle_dir: Path, pneumonia_npz: Path) -> None:
    """Two batches in progress at once (each decoded, run and decided in its own thread) give the same results in
    the same order as one at a time, unreadable items in their place, and read the stream no further ahead than the
    batches in progress."""
    import threading

    with np.load(pneumonia_npz) as z:
        images = [z["test_images"][k] for k in range(37)]
    bad = {3, 8, 9, 30}
    lanes_seen: set[str] = set()

    def load(k: int) -> np.ndarray:
        lanes_seen.add(threading.current_thread().name)
        if k in bad:
            raise NotAnImageError(f"item{k}", "not a recognised image format")
        return np.asarray(images[k])

    read: list[int] = []

    def items():  # type: ignore[no-untyped-def]
        for k in range(len(images)):
            read.append(k)
            yield f"item{k}", k

    bundle = load_bundle(bundle_dir, threads=1)  # as `carelens predict` loads it for two lanes on 2 cores
    one = list(Engine(bundle, batch_size=4).predict_items(items(), load))
    read.clear()
    stream = Engine(bundle, batch_size=4, lanes=2).predict_items(items(), load)
    first = next(stream)
    assert len(read) <= 4 * 3  # the batch being answered, the one in progress and the next submitted: no more
    two = [first, *stream]
    assert [r.input for r in two] == [r.input for r in one] == [f"item{k}" for k in range(len(images))]
    assert [r.error is not None for r in two] == [k in bad for k in range(len(images))]
    assert [r.to_dict() for r in two] == [r.to_dict() for r in one]
    assert sum(name.startswith("carelens-lane") for name in lanes_seen) == 2
    with pytest.raises(ConfigError, match="lanes must be at least 1"):
        Engine(load_bundle(bundle_dir), lanes=0)


def test_prediction_runs_with_torch_unimportable(bundle_dir: Path, pneumonia_npz: Path, tmp_path: Path) -> None:
    with np.load(pneumonia_npz) as z:
        Image.fromarray(z["test_images"][0]).save(tmp_path / "x.png")
    code = textwrap.dedent(f"""
        import importlib.abc, sys

        class BlockTorch(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this process")

        sys.meta_path.insert(0, BlockTorch())  # any 'import torch' now fails
        from carelens.bundle import BundleSpec, load_bundle
        from carelens.predict import Engine
        engine = Engine(load_bundle({str(bundle_dir)!r}))
        r = next(engine.predict_paths([{str(tmp_path / 'x.png')!r}]))
        assert r.assessment is not None, r.error
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
        # evaluation-only libraries stay out of the serving process too (sklearn.metrics: ~50 MB of RSS)
        assert "sklearn.metrics" not in sys.modules, "sklearn.metrics imported by the serving path"
        # and the fitting and signal-processing parts of scipy (~60 MB together; bench inference_int8 peak_rss_mb)
        for m in ("scipy.optimize", "scipy.signal"):
            assert m not in sys.modules, m + " imported by the serving path"
        print("ok", r.assessment.triage.level)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")


def test_heatmap_finds_the_blob(tmp_path: Path) -> None:
    """A model trained to find a bright blob looks at the blob."""
    from carelens.data import make_splits, open_dataset
    from carelens.labels import NO_SPEC_NOTE
    from carelens.train import TrainConfig, train

    rng = np.random.default_rng(0)
    root = tmp_path / "blobs"
    for k in range(240):
        img = rng.integers(0, 60, (32, 32, 3)).astype(np.uint8)
        label = "blob" if k % 2 else "plain"
        if label == "blob":
            cy, cx = rng.integers(6, 26, 2)
            img[cy - 4 : cy + 4, cx - 4 : cx + 4] = 250
        (root / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / label / f"{k}.png")
    ds = open_dataset(root)
    run = tmp_path / "run"
    train(ds, make_splits(ds), TrainConfig(model="small_cnn", preprocess=PreprocessConfig(image_size=32), head_epochs=0, finetune_epochs=4,
                                           lr_finetune=3e-3, batch_size=32, augment="none", threads=2), run)
    assert NO_SPEC_NOTE in calibrate_run(run).report["warnings"]  # every class at the defaults: nothing escalates
    bundle = load_bundle(export_run(run, tmp_path / "bundle"))
    assert bundle.spec.name == "blobs"  # no label spec, no --name: the model is named after its data, not "unnamed"
    engine = Engine(bundle)
    hits = 0
    for k in range(10):
        img = rng.integers(0, 60, (48, 40, 3)).astype(np.uint8)  # another size than training: mapped back
        cy, cx = int(rng.integers(8, 40)), int(rng.integers(8, 32))
        img[cy - 6 : cy + 6, cx - 6 : cx + 6] = 250
        (a, heat), = engine.assess([img], heatmaps=True)
        assert heat is not None and heat.shape == (48, 40)
        inside = heat[cy - 6 : cy + 6, cx - 6 : cx + 6].mean()
        hits += a.top[0].id == "blob" and inside > 1.5 * heat.mean()
    assert hits >= 8
    # without heatmaps the feature map is not fetched, and nothing else changes
    (plain, no_heat), = engine.assess([img])
    assert no_heat is None and plain == a
    assert engine.infer([img], fmap=False).fmap is None and engine.infer([img]).fmap is not None
    # the evaluation report says why a spec-less model has no critical-miss rate
    res = CliRunner().invoke(app, ["evaluate", str(tmp_path / "bundle"), str(root), "--splits", str(run / "splits.json"),
                                   "--out", str(tmp_path / "report")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["critical_classes"] == []
    assert "no class of the label spec is critical" in (tmp_path / "report" / "report.html").read_text()


def test_pooled_noncritical_thresholds_reach_the_bundle_and_its_facts(tiny_ham_run: Path, tmp_path: Path) -> None:
    """`carelens calibrate --pool-noncritical`, then export: the bundle's sets (the image's and the facts-fused ones,
    both refitted on the shipped graph's outputs) give HAM10000's non-critical classes one threshold and each critical
    class its own; the calibration says which classes were pooled."""
    run = _copy(tiny_ham_run, tmp_path)
    res = CliRunner().invoke(app, ["calibrate", str(run), "--pool-noncritical"])
    assert res.exit_code == 0, res.output
    assert "bkl, df, nv, vasc share one threshold" in " ".join(res.output.split())
    assert json.loads((run / "calibration.json").read_text())["pooled_classes"] == ["bkl", "df", "nv", "vasc"]
    out = export_run(run, tmp_path / "bundle", name="derma", version="1")
    bundle = load_bundle(out)
    assert json.loads((out / "bundle.json").read_text())["conformal"]["pooled"] == [2, 3, 5, 6]
    for cp in (bundle.conformal, bundle.facts.conformal_ if bundle.facts else None):
        assert cp is not None and cp.pooled == (2, 3, 5, 6)
        assert len(set(cp.thresholds_[[2, 3, 5, 6]])) == 1 and len(set(cp.thresholds_)) > 1
