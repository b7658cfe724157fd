"""`carelens <verb>`: the command-line edge. Domain errors become one red line and exit code 1.

Each verb imports what it needs when it runs, so that `carelens --help` starts fast and serving verbs never
import torch; the CLI sits on top of every package, so these imports cannot form a cycle.
"""

from __future__ import annotations

import functools
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer
from rich.markup import escape
from rich.table import Table

from carelens import __version__
from carelens.console import console, err_console, notice, progress_bar
from carelens.errors import CarelensError, ConfigError

if TYPE_CHECKING:
    from carelens.predict import Result
    from carelens.serve import ServeSettings

__all__ = ["app", "main"]

INT8_WARN_LOSS = 0.005  # validation balanced accuracy an int8 export may lose before it is said loudly

app = typer.Typer(name="carelens", help="Trustworthy triage models from labelled medical images.", no_args_is_help=True)
data_app = typer.Typer(help="Get public datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
symptoms_app = typer.Typer(help="The symptom bundle.", no_args_is_help=True)
app.add_typer(symptoms_app, name="symptoms")
keys_app = typer.Typer(help="Signing keys for bundles.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
audit_log_app = typer.Typer(help="The service's audit log.", no_args_is_help=True)
app.add_typer(audit_log_app, name="audit-log")
clinical_app = typer.Typer(help="Clinical (tabular) models: heart risk, horse colic, your own table.",
                            no_args_is_help=True)
app.add_typer(clinical_app, name="clinical")
scenarios_app = typer.Typer(help="Scripted end-to-end scenarios against the service.", no_args_is_help=True)
app.add_typer(scenarios_app, name="scenarios")

F = TypeVar("F", bound=Callable[..., Any])


def _edge(fn: F) -> F:
    """Translate carelens errors, and the file system's, once: one line on stderr, exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CarelensError as exc:
            err_console.print(f"[red]{type(exc).__name__}: {exc}[/red]", soft_wrap=True)
            raise typer.Exit(code=1) from None
        except OSError as exc:  # a path that cannot be read or written (permissions, a file where a folder goes)
            err_console.print(f"[red]{type(exc).__name__}: {escape(str(exc))}[/red]", soft_wrap=True)
            raise typer.Exit(code=1) from None

    return wrapper  # type: ignore[return-value]


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(f"--fractions must be three numbers like 0.7,0.1,0.2, got {text!r}") from None
    if len(parts) != 3:
        raise ConfigError(f"--fractions must be three numbers like 0.7,0.1,0.2, got {text!r}")
    return parts


@app.command()
def version() -> None:
    """Print the carelens version."""
    console.print(__version__)


@app.command()
@_edge
def specs(
    init: Annotated[str | None, typer.Option(help="Write a spec to edit for this dataset (as for `audit`, or a table "
                                                  "of cases with --label-column): a class per label, every one at the "
                                                  "default severity and triage.")] = None,
    out: Annotated[Path, typer.Option(help="With --init: the YAML file to write.")] = Path("spec.yaml"),
    label_column: Annotated[str | None, typer.Option(help="With --init: DATA is a table of cases (CSV/JSON, as for "
                                                          "`clinical build`) whose outcomes are in this column.")] = None,
) -> None:
    """List the label specs that ship with carelens, or with --init write one to edit for your data."""
    from carelens.labels import builtin_specs, load_spec

    if init is not None:
        _init_spec(init, out, label_column)
        return
    table = Table("spec", "classes", "title")
    for name in builtin_specs():
        s = load_spec(name)
        table.add_row(name, str(len(s.classes)), s.title)
    console.print(table)


CRITICAL_MISS_HELP = ("The {on} critical-miss rate the shipped decision rule must keep to; among the rules that do, the "
                      "one with the lowest over-triage ships.")

# Scoring many images (`predict`, `evaluate`): batches in progress at once
LanesOption = Annotated[int, typer.Option(min=1, help=(
    "Batches in progress at once, each on cores/lanes ONNX Runtime threads (2 lanes of one thread: +20% images/s on 2 "
    "cores); 1: one batch at a time on every core. More images than one batch only."))]
# The prediction sets' options, the same for a model trained here (`calibrate`) and one trained elsewhere (`import`)
AlphaOption = Annotated[float, typer.Option(help="Miscoverage of the prediction sets (0.1 = 90% coverage).")]
ScoreOption = Annotated[str, typer.Option(help="Conformal score: lac or aps.")]
ClassConditionalOption = Annotated[bool, typer.Option(help="One threshold per class (Mondrian).")]
PoolNoncriticalOption = Annotated[bool, typer.Option(
    help="The non-critical classes share one threshold, each critical class keeping its own: smaller sets, every "
         "critical class still covered at 1 - alpha, the others together.")]

SPEC_HEADER = """\
# Label spec for {data}, written by `carelens specs --init`. Set, for each class, what a clinician would:
#   severity: low | moderate | high | critical   (high and critical count as "must not miss": the critical-miss rate
#             is measured on them and the decision rule escalates when one is plausible)
#   triage:   self_care | consultation | consultation_24 | emergency | emergency_ambulance
#   advice:   what to tell the person; name: how the class is shown; group: the body system
# `merge` maps each source label onto its class id; ids are lower-case letters, digits and _.
# Then: carelens train {data} --spec {out}   (a table of cases: carelens clinical build {data} --spec {out} ...)
"""


def _init_spec(data: str, out: Path, label_column: str | None) -> None:
    import yaml

    from carelens.data import open_dataset, read_table
    from carelens.labels import template_spec

    if out.exists():
        raise ConfigError(f"{out} exists; choose another --out or delete it (a spec you edited is not overwritten)")
    if label_column is None:
        ds = open_dataset(data)
        spec = template_spec(ds.name, ds.class_counts())
    else:
        rows = read_table(data, "table of cases")
        if label_column not in rows[0]:
            raise ConfigError(f"table {data} has no column {label_column!r}; its columns are {', '.join(rows[0])}")
        labels = sorted({str(r[label_column]).strip() for r in rows} - {""})
        spec = template_spec(Path(data).stem, labels)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(SPEC_HEADER.format(data=data, out=out) + yaml.safe_dump(spec.to_dict(), sort_keys=False,
                                                                        allow_unicode=True), encoding="utf-8")
    console.print(f"wrote {out}: {len(spec.classes)} classes, every one at severity moderate and triage consultation "
                  "until you set them")


@app.command()
@_edge
def audit(
    data: Annotated[str, typer.Argument(help="Image folder, manifest (.csv/.json), MedMNIST .npz, or a public set name (ham10000, busi, busi_binary, pneumoniamnist).")],
    spec: Annotated[str | None, typer.Option(help="Label spec: a YAML path or a built-in name.")] = None,
    out: Annotated[Path, typer.Option(help="Where to write audit.json.")] = Path("audit.json"),
    splits: Annotated[Path | None, typer.Option(help="A split file to check for leakage.")] = None,
    target: Annotated[int | None, typer.Option(help="Examples wanted per class (for the deficit column).")] = None,
    min_per_class: Annotated[int, typer.Option(help="Below this, a class is too small to validate.")] = 100,
    near_threshold: Annotated[float, typer.Option(help="Thumbnail correlation for near-duplicates.")] = 0.99,
    workers: Annotated[int | None, typer.Option(help="Processes that read images.")] = None,
) -> None:
    """Audit a dataset: class counts, imbalance, bad files, duplicates, leakage."""
    from carelens.data import audit_dataset, load_splits, open_dataset

    ds = open_dataset(data, spec)
    split_obj = load_splits(splits, ds) if splits else None
    with progress_bar(f"reading {ds.name}", len(ds)) as advance:
        report = audit_dataset(
            ds, splits=split_obj, target_per_class=target, min_per_class=min_per_class,
            near_threshold=near_threshold, workers=workers, progress=advance,
        )
    report.save(out)
    table = Table(title=f"{ds.name}: {report.n_readable}/{report.n_examples} readable, imbalance {report.imbalance_ratio}:1")
    for col in ("class", "examples", "groups", "share", f"deficit to {report.target_per_class}", "validate?"):
        table.add_column(col, justify="right" if col != "class" else "left")
    for c in report.classes:
        table.add_row(
            c.id, str(c.readable), str(c.groups), f"{c.share:.1%}", str(c.deficit),
            "[red]too few[/red]" if c.too_few_to_validate else "ok",
        )
    console.print(table)
    facts = Table.grid(padding=(0, 2))
    for name, value in (
        ("unreadable files", len(report.unreadable)),
        ("tiny images", len(report.tiny_images)),
        ("exact duplicate sets", len(report.exact_duplicates)),
        ("near-duplicate pairs", len(report.near_duplicates)),
        ("duplicates across classes", len(report.cross_class_duplicates)),
        ("duplicates across groups", len(report.cross_group_duplicates)),
        ("duplicates across splits (leakage)", len(report.split_leaks)),
        ("groups spanning classes", len(report.groups_spanning_classes)),
    ):
        facts.add_row(name, str(value))
    console.print(facts)
    for item in report.unreadable[:10]:
        console.print(f"[yellow]unreadable[/yellow] {item['path'] or item['id']}: {item['error']}")
    for line in report.warnings:
        notice(line)
    console.print(f"wrote {out} in {report.seconds:.1f} s")


@app.command()
@_edge
def split(
    data: Annotated[str, typer.Argument(help="Dataset (as for `audit`).")],
    out: Annotated[Path, typer.Option(help="Split file to write.")] = Path("splits.json"),
    spec: Annotated[str | None, typer.Option(help="Label spec.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    fractions: Annotated[str, typer.Option(help="train,val,test shares.")] = "0.7,0.1,0.2",
    near_threshold: Annotated[float, typer.Option(help="Near-duplicate threshold (used when the data has no groups).")] = 0.99,
) -> None:
    """Write a stratified, group-aware split file that every later stage reads."""
    from carelens.data import open_dataset, split_dataset

    shares = _fractions(fractions)
    ds = open_dataset(data, spec)
    with progress_bar(f"splitting {ds.name}", len(ds)) as advance:
        s = split_dataset(ds, shares, seed, near_threshold=near_threshold, progress=advance)
    s.save(out, ds)
    table = Table("class", "train", "val", "test", title=f"{ds.name} split ({s.strategy}, seed {seed})")
    counts = s.counts(ds)
    for c in ds.class_counts():
        table.add_row(c, *(str(counts[k].get(c, 0)) for k in ("train", "val", "test")))
    console.print(table)
    console.print(f"wrote {out}")


def _torchrun(argv: list[str], nproc: int) -> int:
    """Run ``carelens <argv>`` as ``nproc`` processes on this machine under torchrun; their exit code. This process
    only waits: it imports no torch (6 s on a slow 2-core machine, before the workers could start)."""
    import subprocess
    import sys

    from carelens.settings import threads_per_process

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "carelens.cli", *argv]
    return subprocess.call(cmd, env={**os.environ, "OMP_NUM_THREADS": str(threads_per_process(nproc))})


@app.command("train")
@_edge
def train_cmd(
    data: Annotated[str, typer.Argument(help="Dataset (as for `audit`).")],
    out: Annotated[Path, typer.Option(help="Run directory.")] = Path("run"),
    spec: Annotated[str | None, typer.Option(help="Label spec.")] = None,
    splits: Annotated[Path | None, typer.Option(help="Split file from `carelens split` (default: made here, seed 0).")] = None,
    config: Annotated[Path | None, typer.Option(help="JSON file of training settings (see TrainConfig).")] = None,
    model: Annotated[str | None, typer.Option(help="efficientnet_lite0, efficientnet_lite1, efficientnet_lite2 (extra lite12) or small_cnn.")] = None,
    image_size: Annotated[int | None, typer.Option(help="Input size in pixels.")] = None,
    head_epochs: Annotated[int | None, typer.Option(help="Epochs of the head on frozen features.")] = None,
    finetune_epochs: Annotated[int | None, typer.Option(help="Epochs of fine-tuning.")] = None,
    imbalance: Annotated[str | None, typer.Option(help="Comma list of none, weighted, focal, balanced_sampler.")] = None,
    augment: Annotated[str | None, typer.Option(help="Augmentation preset.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    severity_head: Annotated[str | None, typer.Option(help="Multi-label: softmax or ordinal severity heads.")] = None,
    track: Annotated[str | None, typer.Option(help="Log the run to an experiment tracker: mlflow.")] = None,
    folds: Annotated[int | None, typer.Option(
        help="K-fold cross-validation (small sets): one run per fold in --out/fold_<i>, test figures as mean ± sd.")] = None,
    tracking_uri: Annotated[str | None, typer.Option(
        help="MLflow tracking URI (default: sqlite store in ./mlruns).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --out.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace the run already in --out (its calibration too).")] = False,
    nproc: Annotated[int, typer.Option(
        min=1, help="Training processes on this machine (DistributedDataParallel under torchrun: gloo on CPU, nccl "
                    "on GPUs); on a cluster, start `torchrun ... -m carelens.cli train` on each machine instead.")] = 1,
) -> None:
    """Train a classifier: frozen-feature head, then fine-tuning; writes metrics, curves and checkpoints."""
    import sys

    from carelens.steps import Run

    if Run(out).file(Run.CONFIG).is_file() and not (resume or overwrite) and "WORLD_SIZE" not in os.environ:
        raise ConfigError(f"{out} already holds a training run: --resume continues it, --overwrite replaces it (and "
                          "its calibration), or choose another --out")
    if nproc > 1 and "WORLD_SIZE" not in os.environ:  # start the processes; each runs this command without --nproc
        if folds is not None:
            raise ConfigError("--folds runs one training after another; use --nproc with a single run")
        argv = sys.argv[1:]
        k = next(i for i, a in enumerate(argv) if a == "--nproc" or a.startswith("--nproc="))
        del argv[k : k + (1 if "=" in argv[k] else 2)]
        code = _torchrun(argv, nproc)
        if code:
            raise typer.Exit(code)
        return

    from carelens.config import TrainConfig
    from carelens.data import load_splits, make_folds, near_duplicate_pairs, open_dataset, scan_dataset, split_dataset
    from carelens.train import cross_validate, make_tracker, train

    settings: dict[str, Any] = TrainConfig.read_settings(config) if config else {}
    for key, value in (("model", model), ("image_size", image_size), ("head_epochs", head_epochs),
                       ("finetune_epochs", finetune_epochs), ("augment", augment), ("seed", seed),
                       ("severity_head", severity_head)):
        if value is not None:
            settings[key] = value
    if imbalance is not None:
        settings["imbalance"] = tuple(s.strip() for s in imbalance.split(","))
    cfg = TrainConfig.from_dict(settings)  # fails here, before any image is read
    ds = open_dataset(data, spec)
    if ds.spec is None:
        from carelens.labels import NO_SPEC_NOTE

        notice(NO_SPEC_NOTE)
    if folds is not None:
        pairs = None
        if not ds.has_groups:
            with progress_bar(f"grouping near-duplicates of {ds.name}", len(ds)) as advance:
                thumbs = scan_dataset(ds, progress=advance).thumbs
            pairs = [(a, b) for a, b, _ in near_duplicate_pairs(thumbs, 0.99)]
        doc = cross_validate(ds, make_folds(ds, folds, cfg.seed, near_duplicate_pairs=pairs), cfg, out)
        table = Table("test figure", "mean", "sd", title=f"{ds.name}: {folds}-fold cross-validation ({doc['strategy']})")
        for k, v in doc["summary"].items():
            table.add_row(k, f"{v['mean']:.3f}", f"{v['sd']:.3f}")
        console.print(table)
        console.print(f"wrote {out}/crossval.json and one run per fold")
        return
    if splits is not None:
        split_obj = load_splits(splits, ds)
    else:
        with progress_bar(f"splitting {ds.name}", len(ds)) as advance:
            split_obj = split_dataset(ds, seed=cfg.seed, progress=advance)
    tracker = make_tracker(track, tracking_uri)  # fails here, before training, if MLflow is missing
    res = train(ds, split_obj, cfg, out, resume=resume, tracker=tracker)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # process 0 measures and reports
    columns: list[tuple[str, Callable[[dict[str, Any]], float]]] = (
        [("macro F1", lambda m: m["macro_f1"]), ("micro F1", lambda m: m["micro_f1"]),
         ("macro AUC", lambda m: m["macro_auc"]), ("severity QWK", lambda m: m["severity"].get("qwk", float("nan")))]
        if ds.multilabel else
        [("balanced acc", lambda m: m["balanced_accuracy"]), ("accuracy", lambda m: m["accuracy"]),
         ("macro AUC", lambda m: m["macro_auc"]), ("macro F1", lambda m: m["macro_f1"])])
    table = Table("split", *(c for c, _ in columns), title=f"{ds.name}: {out}")
    for name, m in (("val", res.val), ("test", res.test)):
        if m:
            table.add_row(name, *(f"{get(m):.3f}" for _, get in columns))
    console.print(table)
    if res.test and "per_class_recall" in res.test:
        recall = ", ".join(f"{c} {r:.2f}" for c, r in res.test["per_class_recall"].items())
        console.print(f"test recall per class: {recall}")
    console.print(f"wrote {out}/ (metrics.json, curves.png, best.pt) in {res.seconds:.0f} s")


@app.command()
@_edge
def calibrate(
    run: Annotated[Path, typer.Argument(help="A training run directory.")],
    alpha: AlphaOption = 0.1,
    score: ScoreOption = "lac",
    class_conditional: ClassConditionalOption = True,
    pool_noncritical: PoolNoncriticalOption = False,
    ood_method: Annotated[str, typer.Option(help="combined (default), mahalanobis or knn.")] = "combined",
    ood_pass_rate: Annotated[float, typer.Option(
        help="Share of in-distribution images the OOD gate lets through.")] = 0.95,
    ood_confidence: Annotated[float, typer.Option(
        help="Probability, over the draw of the validation images, that the gate passes --ood-pass-rate of new "
             "in-distribution images; 0: the plain quantile of the validation scores (holds only on average).")] = 0.95,
    facts: Annotated[str | None, typer.Option(
        help="Clinical facts to fuse with the image, comma-separated (default: every fact the dataset has).")] = None,
    no_facts: Annotated[bool, typer.Option("--no-facts", help="Image only: fit no facts model.")] = False,
    scaler: Annotated[str, typer.Option(help="Which scalers compete by cross-fitted validation NLL: prior_free (the "
                                             "temperature, or a scale per class), auto (also class biases: they learn "
                                             "the validation class balance) or temperature alone.")]
    = "prior_free",
    critical_miss_target: Annotated[float, typer.Option(help=CRITICAL_MISS_HELP.format(on="validation"))] = 0.02,
) -> None:
    """Temperature scaling, conformal prediction sets and the OOD gate, fitted on the validation split;
    with clinical facts in the data, a facts model fused with the image (weights fitted on validation)."""
    from carelens.calibrate import ConformalScore, OODMethod, ScalerChoice
    from carelens.steps import calibrate_run

    names = [] if no_facts else ([f.strip() for f in facts.split(",") if f.strip()] if facts else None)
    if scaler not in ("temperature", "prior_free", "auto"):
        raise ConfigError(f"--scaler must be prior_free, auto or temperature, got {scaler!r}")
    cal = calibrate_run(run, alpha=alpha, score=cast(ConformalScore, score), class_conditional=class_conditional,
                        pool_noncritical=pool_noncritical, ood_method=cast(OODMethod, ood_method), pass_rate=ood_pass_rate,
                        pass_confidence=ood_confidence or None, facts=names, critical_miss_target=critical_miss_target,
                        scaler=cast(ScalerChoice, scaler))  # each validated when it is fitted
    r = cal.report
    if cal.multilabel is not None:
        _print_multilabel_calibration(r)
        return
    console.print(f"temperature {r['temperature']:.3f}"
                  + (f", class scales {', '.join(f'{v:.2f}' for v in r['scale'])}" if r.get("scale") else "")
                  + (f", class biases {', '.join(f'{b:+.2f}' for b in r['bias'])}" if r.get("bias") else "")
                  + f" ({r['scaler']['chosen']})")
    if r.get("pooled_classes"):
        console.print(f"prediction sets: {', '.join(r['pooled_classes'])} share one threshold (covered together); "
                      "each other class has its own")
    t = r.get("test")
    if t:
        table = Table("test figure", "value")
        for k in ("ece_before", "ece", "brier_before", "brier", "coverage", "min_class_coverage", "mean_set_size",
                  "ood_pass_rate", "critical_miss_rate", "over_triage_rate"):
            v = t.get(k)
            table.add_row(k, "n/a" if v is None else f"{v:.4f}")
        console.print(table)
        _print_level_agreement(t)
    ft = (r.get("facts") or {}).get("test")
    if ft:
        table = Table("test figure", "image alone", "image + facts")
        for k in ("balanced_accuracy", "accuracy", "macro_auc", "nll", "coverage", "mean_set_size",
                  "critical_miss_rate", "over_triage_rate"):
            if k in ft:
                table.add_row(k, f"{ft[k + '_image']:.4f}", f"{ft[k]:.4f}")
        console.print(f"facts fused: {', '.join(r['facts']['schema'])}")
        console.print(table)
    ops = r.get("operating_points")
    if ops:
        table = Table("alpha", "critical-miss (val)", "over-triage (val)", "mean set size (val)",
                      title="operating points: validation cross-fitted (choose here), --alpha sets the one shipped")
        for v in ops["val"]:
            table.add_row(f"{v['alpha']:g}", f"{v['critical_miss_rate']:.4f}", f"{v['over_triage_rate']:.4f}",
                          f"{v['mean_set_size']:.2f}")
        console.print(table)
    _print_rule_table(r.get("decision_rule"), "set (most urgent class in the set)", "p(critical)")
    for w in r.get("warnings", []):
        notice(w)
    console.print(f"wrote {run}/calibration.json, ood.npz, reliability.png, operating_points.png")


def _print_multilabel_calibration(r: dict[str, Any]) -> None:
    m = r["multilabel"]
    floor = r.get("severity_floor") or {}
    console.print(f"per-condition temperatures {', '.join(f'{t:.2f}' for t in m['temperatures'])}; risk-control "
                  f"threshold {m['risk_threshold']:.3f} (alpha {m['alpha']:g})"
                  + (f"; severity floor {floor['chosen']:g}" if floor else ""))
    t = r.get("test")
    if t:
        table = Table("test figure", "value")
        for k in ("macro_f1", "micro_f1", "macro_auc", "fnr", "fnr_target", "mean_kept", "mean_true", "ece_before",
                  "ece", "ood_pass_rate", "critical_miss_rate", "over_triage_rate"):
            v = t.get(k)
            table.add_row(k, "n/a" if v is None else f"{v:.4f}")
        table.add_row("severity_qwk", f"{t['severity'].get('qwk', float('nan')):.4f}")
        console.print(table)
        _print_level_agreement(t)
    _print_rule_table(r.get("decision_rule"), "set (conditions present or kept)", "p(urgent condition)")
    for w in r.get("warnings", []):
        notice(w)
    console.print("wrote calibration.json, ood.npz, reliability.png")


def _bound(rule: dict[str, Any]) -> str:
    from carelens.policy import rule_bound_text

    text = rule_bound_text(rule)
    return f"; {text}" if text else ""


def _print_rule_table(rule: dict[str, Any] | None, set_rule: str, escalation: str) -> None:
    """The shipped decision rule beside the set rule: critical-miss and over-triage on validation (cross-fitted)
    and test."""
    if not rule:
        return
    met = "" if rule["met_on_val"] else "; met by no rule: the one missing fewest ships"
    table = Table("decision rule", "critical-miss (val)", "over-triage (val)", "critical-miss (test)",
                  "over-triage (test)", title=f"shipped: {rule['chosen']} (critical-miss target "
                                              f"{rule['target_critical_miss_rate']:g} on "
                                              f"{rule.get('chosen_on', 'validation')}{met}{_bound(rule)})")
    for j, v in enumerate(rule["val"]):
        if v["critical_threshold"] is None or v["critical_threshold"] == rule["critical_threshold"]:
            t_row = rule["test"][j] if "test" in rule else {}
            name = set_rule if v["critical_threshold"] is None else f"{escalation} >= {v['critical_threshold']:g}"
            table.add_row(name, f"{v['critical_miss_rate']:.4f}", f"{v['over_triage_rate']:.4f}",
                          *(f"{t_row[x]:.4f}" if t_row else "-" for x in ("critical_miss_rate", "over_triage_rate")))
    console.print(table)


@app.command()
@_edge
def export(
    run: Annotated[Path, typer.Argument(help="A calibrated training run.")],
    out: Annotated[Path, typer.Option(help="Bundle directory to write.")] = Path("bundle"),
    name: Annotated[str | None, typer.Option(help="Model name (default: the label spec's name; without a spec, the dataset's).")] = None,
    version: Annotated[str | None, typer.Option(help="Model version (default: a UTC timestamp).")] = None,
    zip_: Annotated[bool, typer.Option("--zip", help="Also write BUNDLE.zip.")] = False,
    sign: Annotated[Path | None, typer.Option(help="Ed25519 private key (PEM) to sign the bundle with.")] = None,
    int8: Annotated[bool, typer.Option("--int8", help="Ship the int8 model (static quantisation, biases corrected, "
                                                      "calibration refitted on its outputs; the stem and first block "
                                                      "stay in float): about 1.5-2x faster on CPUs with VNNI, at some "
                                                      "risk to accuracy (measured and printed; on the chosen HAM10000 "
                                                      "recipe, 2 seeds, none lost: +0.5 and +0.7 points of balanced "
                                                      "accuracy).")] = False,
    flips: Annotated[bool, typer.Option("--flips", help="Average each image with its left-right and top-bottom "
                                                        "mirror images inside the model (test-time augmentation; "
                                                        "3x the model's work per image; calibration refitted on "
                                                        "its outputs).")] = False,
    quarter_turns: Annotated[bool, typer.Option(
        "--quarter-turns", help="With --flips: average over the 8 symmetries of the square (the mirror images, the "
                                "quarter turns and their mirror images; 8x the model's work per image), for models "
                                "trained with quarter turns (every mirroring augment preset).")] = False,
    ensemble: Annotated[list[Path] | None, typer.Option(
        "--ensemble", help="Another run of the same recipe (another seed, the same data and split) whose model is "
                           "averaged with RUN's inside the graph (a deep ensemble; repeat for more; each member adds "
                           "its model's work per image; calibration refitted on the ensemble's outputs).")] = None,
) -> None:
    """Export a run to a verified bundle: model.onnx, bundle.json, ood.npz, head.npz (and bundle.sig with --sign)."""
    import shutil

    from carelens.bundle import sign_bundle
    from carelens.steps.export import export_run

    path = export_run(run, out, name=name, version=version, int8=int8, flips=flips, quarter_turns=quarter_turns,
                      ensemble=ensemble or [])
    if sign is not None:
        sign_bundle(path, sign)
    doc = json.loads((path / "bundle.json").read_text())
    par = doc["parity"]
    if int8 or flips or ensemble:
        views = "8 views" if quarter_turns else "flips"
        shipped = " + ".join(k for k, on in (("int8", int8), (views, flips),
                                             (f"ensemble of {len(ensemble or []) + 1}", ensemble)) if on)
        console.print(f"exported {doc['name']} {doc['version']} ({shipped}) to {path}: top-1 agreement with the "
                      f"trained model {par['top1_agreement']:.3f}, max probability difference "
                      f"{par['max_probability_diff']:.3f} on {par['images']} validation images; validation balanced "
                      f"accuracy trained {par['val_balanced_accuracy_trained']:.3f} / shipped "
                      f"{par['val_balanced_accuracy_shipped']:.3f}")
        lost = par["val_balanced_accuracy_trained"] - par["val_balanced_accuracy_shipped"]
        if int8 and lost > INT8_WARN_LOSS:
            console.print(f"[yellow]warning: int8 loses {lost:.3f} balanced accuracy on validation; ship the fp32 "
                          "bundle (export without --int8) unless the speed matters more, and check the critical-miss "
                          "rate with `carelens evaluate`[/yellow]")
    else:
        console.print(f"exported {doc['name']} {doc['version']} to {path}: ONNX vs PyTorch max |logit diff| "
                      f"{par['max_abs_logit_diff']:.1e} on {par['images']} validation images")
    if zip_:
        archive = shutil.make_archive(str(path), "zip", root_dir=path)
        console.print(f"wrote {archive}")


@app.command("import")
@_edge
def import_model(
    model: Annotated[Path, typer.Argument(help="An ONNX image classifier trained elsewhere (one image input, "
                                               "channels first; one score per class).")],
    spec: Annotated[str, typer.Option(help="Label spec (YAML file or built-in name): the classes in the order of "
                                           "the model's outputs, with their triage levels.")],
    data: Annotated[str, typer.Option(help="Labelled data to calibrate and test on (folder, manifest, .npz, or a "
                                           "public set name).")],
    preprocess: Annotated[str, typer.Option(help="How the model expects its input, e.g. 'size=224,mean=0.485,0.456,"
                                                 "0.406,std=0.229,0.224,0.225,resize=stretch' (pixels on [0, 1]).")],
    splits: Annotated[Path | None, typer.Option(help="Split file for DATA (`carelens split`); its validation part "
                                                     "must be unseen by the model. Default: a new grouped split.")] = None,
    out: Annotated[Path, typer.Option(help="Bundle directory to write.")] = Path("bundle"),
    name: Annotated[str | None, typer.Option(help="Model name (default: the label spec's name).")] = None,
    version: Annotated[str | None, typer.Option(help="Model version (default: a UTC timestamp).")] = None,
    alpha: AlphaOption = 0.1,
    score: ScoreOption = "lac",
    class_conditional: ClassConditionalOption = True,
    pool_noncritical: PoolNoncriticalOption = False,
    critical_miss_target: Annotated[float, typer.Option(help=CRITICAL_MISS_HELP.format(on="validation"))] = 0.02,
) -> None:
    """Bring your own model: wrap an ONNX classifier into a calibrated, self-testing bundle (no heatmaps)."""
    from carelens.calibrate import ConformalScore
    from carelens.labels import load_spec
    from carelens.preprocess import PreprocessConfig
    from carelens.steps.importer import import_onnx

    path = import_onnx(model, out, spec=load_spec(spec), data=data, splits=splits, name=name, version=version,
                       preprocess_config=PreprocessConfig.parse(preprocess), alpha=alpha,
                       score=cast(ConformalScore, score), class_conditional=class_conditional,
                       pool_noncritical=pool_noncritical, critical_miss_target=critical_miss_target)
    doc = json.loads((path / "bundle.json").read_text())
    rec, cal = doc["training_config"]["imported"], doc["calibration"]
    console.print(f"imported {model.name} as {doc['name']} {doc['version']} into {path}: outputs read as "
                  f"{rec['outputs']}; out-of-distribution gate on its {rec['ood_reads']}; temperature "
                  f"{doc['temperature']:.2f}; validation balanced accuracy {rec['val_balanced_accuracy']:.3f}")
    if "balanced_accuracy" in cal:  # a test split: the bundle's own calls (its finding weights), not the raw top score
        console.print(f"test: balanced accuracy {cal['balanced_accuracy']:.3f} as the bundle calls "
                      f"({cal['balanced_accuracy_most_probable']:.3f} by the most probable class), coverage "
                      f"{cal['coverage']:.3f}, critical-miss {_rate_text(cal.get('critical_miss_rate'))}, "
                      f"over-triage {_rate_text(cal.get('over_triage_rate'))}")
        _print_level_agreement(cal)


def _rate_text(v: float | None) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v:.3f}"  # None or NaN: no case to count


def _write_all(results: Iterable[Result], out: Path | None, fmt: str, failed: str) -> None:
    """Write every result (to ``out``, else stdout) and say how many were assessed and how many ``failed``."""
    import sys

    from carelens.predict import write_results

    stream = out.open("w", encoding="utf-8", newline="") if out else sys.stdout
    try:
        written = list(write_results(results, stream, fmt))
    finally:
        if out:
            stream.close()
    bad = sum(r.error is not None for r in written)
    err_console.print(f"{len(written) - bad} assessed, {bad} {failed}" + (f"; wrote {out}" if out else ""))


@app.command()
@_edge
def predict(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory or .zip.")],
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders or manifests; a CSV of cases (clinical "
                                                     "models); ECG records (record models).")],
    out: Annotated[Path | None, typer.Option(help="Write results here (.jsonl or .csv); default stdout.")] = None,
    heatmaps: Annotated[Path | None, typer.Option(help="Write a heatmap overlay PNG per image into this folder.")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per model call (8: near-peak speed at a third of the memory of 32).")] = 8,
    species: Annotated[str | None, typer.Option(help="The patients' species; a model of another one is refused.")] = None,
    ray: Annotated[str | None, typer.Option(
        "--ray", help="Score on Ray: 'local' (a local instance) or a cluster ADDRESS; needs --out NAME.jsonl (or "
                      "NAME.parquet: a folder of parts) and resumes from it. Sources may be object-store prefixes "
                      "(s3://...).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="With --ray: scoring actors (one CPU each).")] = 2,
    lanes: LanesOption = 2,
) -> None:
    """Assess images with a bundle (one assessment per image, unreadable files reported and skipped), the rows
    of a CSV of cases with a clinical bundle (one assessment and its per-input contributions per row), or ECG
    recordings with a record model (one assessment per recording)."""
    import sys

    from carelens.bundle import SignalBundle, TabularBundle, is_signal, is_tabular, load_bundle
    from carelens.data import read_image
    from carelens.predict import (
        Engine,
        assess_recordings,
        collect_inputs,
        overlay_heatmap,
        predict_table,
        write_results,
    )
    from carelens.settings import threads_per_process, useful_lanes

    fmt = "csv" if out is not None and out.suffix == ".csv" else "jsonl"
    if out is not None:  # checked before any work, and its folder made
        kinds = (".jsonl", ".csv", *((".parquet",) if ray is not None else ()))
        if out.suffix not in kinds:
            raise ConfigError(f"--out {out}: results are written as {' or '.join(kinds)} (one assessment per line or "
                              "row); name the file with one of those endings")
        out.parent.mkdir(parents=True, exist_ok=True)
    if is_signal(bundle):
        sb = SignalBundle.load(bundle)
        sb.labels.require_species(species, "the model")
        if sb.spec.input != "record":
            raise ConfigError(f"{bundle} classifies heartbeats: use `carelens ecg RECORD --beats {bundle}`")
        _write_all(assess_recordings(sb, inputs), out, fmt, "unreadable")
        return
    if is_tabular(bundle):
        tb = TabularBundle.load(bundle)
        tb.labels.require_species(species, "the model")
        _write_all((r for path in inputs for r in predict_table(tb, path)), out, fmt, "refused")
        return
    if ray is not None:
        _predict_on_ray(bundle, inputs, out, ray, workers, batch_size, species, heatmaps)
        return
    paths = collect_inputs(inputs)
    lanes = useful_lanes(lanes, len(paths), batch_size)
    engine = Engine(load_bundle(bundle, threads=threads_per_process(lanes)), batch_size=batch_size, lanes=lanes)
    engine.bundle.labels.require_species(species, "the model")
    stream = out.open("w", encoding="utf-8", newline="") if out else sys.stdout
    if heatmaps:
        heatmaps.mkdir(parents=True, exist_ok=True)
    errors = 0
    try:
        with progress_bar("predicting", len(paths)) as advance:
            for k, r in enumerate(write_results(engine.predict_paths(paths, heatmaps=heatmaps is not None), stream, fmt)):
                errors += r.error is not None
                if heatmaps and r.finding_heatmaps:  # multi-label: one overlay per condition present
                    img = read_image(r.input)
                    for cid, heat in r.finding_heatmaps.items():
                        (heatmaps / f"{k:05d}_{Path(r.input).stem}_{cid}.png").write_bytes(overlay_heatmap(img, heat))
                elif heatmaps and r.heatmap is not None:
                    (heatmaps / f"{k:05d}_{Path(r.input).stem}.png").write_bytes(
                        overlay_heatmap(read_image(r.input), r.heatmap))
                advance(1)
    finally:
        if out:
            stream.close()
    err_console.print(f"{len(paths) - errors} assessed, {errors} unreadable" + (f"; wrote {out}" if out else ""))


def _predict_on_ray(bundle: Path, inputs: list[str], out: Path | None, address: str, workers: int, batch_size: int,
                    species: str | None, heatmaps: Path | None) -> None:
    from carelens.predict.distributed import score_with_ray

    if out is None or heatmaps is not None:
        raise ConfigError("--ray writes to a file it can resume from (--out NAME.jsonl or NAME.parquet) and draws no "
                          "heatmaps")
    with progress_bar(f"predicting on Ray ({workers} workers)", None) as advance:
        summary = score_with_ray(bundle, inputs, out, address=None if address == "local" else address,
                                 workers=workers, batch_size=batch_size, species=species, progress=advance)
    resumed = f", {summary.skipped} already in {out} (resumed)" if summary.skipped else ""
    err_console.print(f"{summary.scored - summary.errors} assessed, {summary.errors} unreadable{resumed}; wrote {out}")


@app.command()
@_edge
def evaluate(
    args: Annotated[list[str], typer.Argument(help="BUNDLE DATA, or with --compare: BUNDLE_A BUNDLE_B DATA.")],
    out: Annotated[Path, typer.Option(help="Report folder (report.html, metrics.json, predictions.npz).")] = Path("report"),
    compare: Annotated[bool, typer.Option("--compare", help="Compare two bundles side by side.")] = False,
    split: Annotated[str, typer.Option(help="Which split to evaluate.")] = "test",
    splits: Annotated[Path | None, typer.Option(help="The run's split file (default: re-made and checked).")] = None,
    spec: Annotated[str | None, typer.Option(help="Label spec for DATA (default: the bundle's).")] = None,
    other: Annotated[str | None, typer.Option(help="Images of another modality for the edge-case table.")] = None,
    label_column: Annotated[str, typer.Option(help="A clinical bundle's DATA (a CSV of cases): its outcome column.")]
    = "label",
    lanes: LanesOption = 2,
) -> None:
    """Write a self-contained HTML evaluation report and metrics.json. A clinical (tabular) bundle is measured on
    DATA, a CSV of cases it was not built from (external validation)."""
    from carelens.bundle import is_tabular, load_bundle
    from carelens.data import open_dataset
    from carelens.report import evaluate as run_eval
    from carelens.report import resolve_splits, write_comparison, write_report
    from carelens.settings import threads_per_process, useful_lanes

    if len(args) != (3 if compare else 2):
        raise ConfigError("give BUNDLE DATA, or --compare BUNDLE_A BUNDLE_B DATA")
    *bundle_paths, data = args
    if not compare and is_tabular(bundle_paths[0]):
        _evaluate_table(Path(bundle_paths[0]), Path(data), label_column, out)
        return
    other_ds = open_dataset(other) if other else None
    evals = []
    for bp in bundle_paths:
        bundle = load_bundle(bp, threads=threads_per_process(lanes))
        ds = open_dataset(data, spec if spec is not None else bundle.labels)
        ds, split_obj = resolve_splits(bundle, ds, splits)
        n, batch = len(split_obj.indices(ds, split)), 32
        with progress_bar(f"evaluating {bundle.name} on {split}", n) as advance:
            evals.append(run_eval(bundle, ds, split_obj, split=split, other=other_ds, progress=advance,
                                  batch_size=batch, lanes=useful_lanes(lanes, n, batch)))
    path = write_comparison(evals[0], evals[1], out) if compare else write_report(evals[0], out)
    m = evals[0].metrics
    if "fnr" in m:  # multi-label
        console.print(f"macro F1 {m['macro_f1']:.3f}, macro AUC {m['macro_auc']:.3f}, severity QWK "
                      f"{m['severity'].get('qwk', float('nan')):.3f}, FNR {m['fnr']:.3f} (target {m['fnr_target']:g}), "
                      f"kept {m['mean_kept']:.2f} per image; wrote {path}")
    else:
        console.print(f"balanced accuracy {m['balanced_accuracy']:.3f}, accuracy {m['accuracy']:.3f}, "
                      f"ECE {m['ece']:.3f}, coverage {m['coverage']:.3f}; wrote {path}")
    _print_level_agreement(m)


def _print_level_agreement(m: dict[str, Any]) -> None:
    """One line: the shares of cases triaged below, at and above their own level (``carelens evaluate`` draws the
    table)."""
    t = m.get("triage_agreement")
    if t and t["same_level_rate"] is not None:  # None: no case
        console.print(f"triage against each case's own level: {t['below_own_level_rate']:.3f} less urgent, "
                      f"{t['same_level_rate']:.3f} the same, {t['above_own_level_rate']:.3f} more urgent")


def _evaluate_table(bundle_path: Path, data: Path, label_column: str, out: Path) -> None:
    """`carelens evaluate CLINICAL_BUNDLE cases.csv`: the bundle answers every row; the report and metrics.json."""
    from carelens.bundle import TabularBundle
    from carelens.hashing import file_digest
    from carelens.report import evaluate_table, write_table_report
    from carelens.steps import read_clinical_table

    b = TabularBundle.load(bundle_path)
    rows, y, _ = read_clinical_table(data, b.labels, label_column)
    ev = evaluate_table(b, rows, y, source=data.name, data_sha256=file_digest(data))
    path = write_table_report(ev, out)
    m, at = ev.metrics, ev.metrics["at_build"]

    def both(k: str, built: str) -> str:
        return f"{m[k]:.3f}" + (f" ({at[built]:.3f} at build)" if at.get(built) is not None else "")

    console.print(f"{m['assessed']} of {m['rows']} cases assessed ({m['refused']} refused: listed in the report); "
                  f"balanced accuracy {both('balanced_accuracy', 'balanced_accuracy')}, AUC {both('macro_auc', 'auc')}, "
                  f"ECE {both('ece', 'ece')}, coverage {both('coverage', 'coverage')}")
    if m.get("critical_miss_rate") is not None:
        console.print(f"critical-miss {both('critical_miss_rate', 'critical_miss_rate')}, over-triage "
                      + ("n/a (no routine outcome)" if m.get("over_triage_rate") is None else
                         both("over_triage_rate", "over_triage_rate")))
    _print_level_agreement(m)
    for w in m["warnings"]:
        notice(w)
    console.print(f"wrote {path} and metrics.json")


@symptoms_app.command("build")
@_edge
def symptoms_build(
    out: Annotated[Path, typer.Option(help="Symptom bundle folder.")] = Path("symptom_bundle"),
    data_dir: Annotated[Path | None, typer.Option(help="Folder holding symptom_disease_kaggle41 (default $CARELENS_DATA).")] = None,
    table: Annotated[Path | None, typer.Option(help="Your own table (CSV): 'Symptom 1..n' columns or 0/1 columns.")] = None,
    spec: Annotated[str | None, typer.Option(help="Label spec for --table (default: one class per label).")] = None,
    species: Annotated[str, typer.Option(help="Who --table describes (human, dog, cattle ...).")] = "human",
    label_column: Annotated[str | None, typer.Option(help="The label column of --table (default: Disease ...).")] = None,
    synthetic: Annotated[bool, typer.Option(help="--table is synthetic (a plumbing check).")] = False,
    real_cases: Annotated[bool, typer.Option(
        "--real-cases", help="--table's rows are real patients' cases; only then may a symptom-only answer say "
                             "'likely' (a curated disease-symptom table never does).")] = False,
    synonyms: Annotated[Path | None, typer.Option(
        help="Your synonym file for --table's symptoms (write one with `carelens symptoms synonyms --table`).")] = None,
    critical_miss_target: Annotated[float, typer.Option(help=CRITICAL_MISS_HELP.format(on="validation"))] = 0.02,
) -> None:
    """Build a symptom bundle (vocabulary, parser, calibrated symptom model) from the Kaggle tables or your table."""
    from carelens.labels import load_spec
    from carelens.settings import data_root
    from carelens.symptoms import SymptomBundle, build_symptom_bundle, load_symptom_table

    if table is not None:
        label_spec = load_spec(spec) if spec else None
        if label_spec is not None:
            label_spec.require_species(species, "the label spec")
        t = load_symptom_table(table, spec=label_spec, species=species, label_column=label_column, synonyms=synonyms)
        m = build_symptom_bundle(t, out, synthetic=synthetic, real_cases=real_cases,
                                 critical_miss_target=critical_miss_target)
    else:
        m = build_symptom_bundle((data_dir or data_root()) / "symptom_disease_kaggle41", out,
                                 critical_miss_target=critical_miss_target)
    with progress_bar("embedding the vocabulary", None):
        SymptomBundle.load(out).parser.parse("warm-up: itchy skin and a fever that will not settle")
    console.print(f"top-3 accuracy with 3 reported symptoms {m['top3_accuracy_3_reported']:.3f}; wrote {out}")
    _print_rule(m, "test, 3 reported symptoms")


@symptoms_app.command("synonyms")
@_edge
def symptoms_synonyms(
    table: Annotated[Path, typer.Option(help="Your symptom table (CSV), as for `symptoms build --table`.")],
    out: Annotated[Path, typer.Option(help="The synonym file to write (YAML), then to fill.")] = Path("synonyms.yaml"),
    label_column: Annotated[str | None, typer.Option(help="The label column of --table.")] = None,
) -> None:
    """Write a synonym file to fill for your table's symptoms (the curated phrasings already in it); pass it back
    with `symptoms build --table ... --synonyms FILE`."""
    from carelens.symptoms import load_symptom_table, synonym_template

    if out.exists():
        raise ConfigError(f"{out} exists; give another --out (your edits there would be lost)")
    t = load_symptom_table(table, label_column=label_column)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(synonym_template(t.vocab.ids), encoding="utf-8")
    console.print(f"wrote {out}: {len(t.vocab.ids)} symptoms; add everyday phrasings under each, then "
                  f"`carelens symptoms build --table {table} --synonyms {out}`")


@symptoms_app.command("fuse")
@_edge
def symptoms_fuse(
    symptom_model: Annotated[Path, typer.Argument(help="Symptom bundle folder (the fusion is kept in it).")],
    model: Annotated[Path, typer.Option(help="Image model bundle over the same condition ids.")],
    pairs: Annotated[Path, typer.Option(help="Cases with a photo and a report: CSV with path, label, symptoms "
                                              "(ids separated by ';') and split (val rows fit, test rows measure).")],
) -> None:
    """Fuse an image model and a symptom model over their shared conditions: fit the pooling weight on paired cases."""
    from carelens.bundle import load_bundle
    from carelens.report import fit_symptom_fusion

    bundle = load_bundle(model)
    with progress_bar("assessing the photos", None) as advance:
        f = fit_symptom_fusion(symptom_model, bundle, pairs, progress=advance)
    console.print(f"fitted on {f['val_cases']} val cases: symptoms weight {f['weight_symptoms']:.2f} (image 1); "
                  f"kept in {symptom_model}")
    t = f.get("test")
    if t is None:
        console.print("[yellow]no test rows: nothing measured[/yellow]")
        return
    table = Table("test cases", "balanced accuracy", "critical-miss rate", "over-triage rate", "mean set size")
    for name, sfx in (("image alone", "_image"), ("symptoms alone", "_symptoms"), ("fused", "_fused")):
        table.add_row(name, f"{t[f'balanced_accuracy{sfx}']:.3f}",
                      *(f"{t[k]:.3f}" if (k := f"{m}{sfx}") in t else "-" for m in
                        ("critical_miss_rate", "over_triage_rate", "mean_set_size")))
    console.print(table)
    if f["synthetic_symptoms"]:
        console.print("[yellow]the symptom model was built from a synthetic table: a plumbing check, not evidence[/yellow]")


@app.command("ecg-train")
@_edge
def ecg_train(
    kind: Annotated[str, typer.Argument(help="beats (MIT-BIH DS1, AAMI N/S/V/F) or ptbxl (PTB-XL superclasses, 12 "
                                             "leads, multi-label).")] = "beats",
    out: Annotated[Path | None, typer.Option(help="Signal bundle folder to write (default models/ecg_beats or "
                                                  "models/ecg_ptbxl).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs (the best validation epoch is kept); default "
                                                    "12 for beats, 40 for ptbxl.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder holding ecg_mitbih / ecg_ptbxl_500 "
                                                       "(default $CARELENS_DATA).")] = None,
    critical_miss_target: Annotated[float, typer.Option(help="ptbxl: " + CRITICAL_MISS_HELP.format(
        on="out-of-fold (folds 1-9, cross-fitted; fold 9 with --rule-groups 0)"))] = 0.02,
    rule_groups: Annotated[int, typer.Option(min=0, help="ptbxl: choose the decision rule on out-of-fold predictions "
                                                         "of folds 1-9 in this many groups of folds (one extra "
                                                         "network per group; 0: on fold 9 alone, whose ~30 urgent "
                                                         "records cannot vouch for a 2% critical-miss rate).")] = 3,
) -> None:
    """Train an ECG network and write it as a signal bundle: the heartbeat classifier (for `carelens ecg --beats`
    and POST /v1/ecg) or the 12-lead recording model (for `carelens predict` and POST /v1/models/NAME/predict)."""
    from carelens.bundle import check_bundle_target
    from carelens.labels import load_spec
    from carelens.policy import check_target
    from carelens.settings import data_root

    if kind not in ("beats", "ptbxl"):
        raise ConfigError(f"unknown ECG model {kind!r}; known: beats, ptbxl")
    check_target(critical_miss_target)  # before the training that needs them
    target = out or Path(f"models/ecg_{kind}")
    check_bundle_target(target)
    root = data_dir or data_root()
    if kind == "beats":
        from carelens.ecg import AAMI_CLASSES, DS1, read_mitbih_beats
        from carelens.train import export_beats, train_beats

        n = epochs or 12
        with progress_bar("reading DS1 beats", None):
            ds1 = read_mitbih_beats(root / "ecg_mitbih", DS1)
        train, val = ds1.split_late()  # validation: the last 20% (in time) of every DS1 record
        with progress_bar("training", n) as advance:
            res = train_beats(train, val, len(AAMI_CLASSES), epochs=n, progress=advance)
        export_beats(res.model, train, val, target, spec=load_spec("ecg_beats"),
                     training={"records": list(DS1), "epochs": n, "best_epoch": res.best_epoch, "history": res.history})
        best = f"validation balanced accuracy {max(h['val_balanced_accuracy'] for h in res.history):.3f}"
        epoch = res.best_epoch
    else:
        from carelens.ecg import PTBXL_FOLDS, read_ptbxl
        from carelens.train import export_records, out_of_fold_records, train_records

        n = epochs or 40
        with progress_bar("reading PTB-XL records", None):
            s = read_ptbxl(root / "ecg_ptbxl_500")
        tr, va, te = s.split()
        dev = s.subset(s.fold <= 9)
        groups = dev.fold_groups(rule_groups) if rule_groups else None  # a bad count fails before the training
        with progress_bar("training", n) as advance:
            rec = train_records(tr.signals, tr.labels, va.signals, va.labels, epochs=n, progress=advance)
        rule_on = None
        if groups is not None:
            with progress_bar(f"decision rule: {rule_groups} out-of-fold networks on folds 1-9",
                              n * rule_groups) as advance:
                oof = out_of_fold_records(dev.signals, dev.labels, groups, epochs=n, progress=advance)
            rule_on = (oof, dev.labels, f"out of fold, folds 1-9 in {rule_groups} groups")
        export_records(rec.model, tr.signals, tr.labels, va.signals, va.labels, target,
                       spec=load_spec("ptbxl_superclasses"), leads=s.leads, fs=100.0,
                       critical_miss_target=critical_miss_target, test=(te.signals, te.labels), rule_on=rule_on,
                       training={"folds": PTBXL_FOLDS, "epochs": n, "best_epoch": rec.best_epoch,
                                 "history": rec.history, "rule_groups": rule_groups})
        best = f"validation (fold 9) macro AUC {max(h['val_macro_auc'] for h in rec.history):.3f}"
        m = json.loads((target / "bundle.json").read_text(encoding="utf-8"))["metrics"]
        t = m["test"]
        console.print(f"test (fold 10, {t['n']} records): macro AUC {t['macro_auc']:.3f}, false-negative rate "
                      f"{t['fnr']:.3f} (target {t['fnr_target']:g}), ECE {t['ece']:.3f}")
        _print_rule_table(m["decision_rule"], "set (conditions present or kept)", "p(urgent condition)")
        epoch = rec.best_epoch
    console.print(f"{best} (epoch {epoch}); wrote {target}")


@clinical_app.command("build")
@_edge
def clinical_build(
    source: Annotated[str, typer.Argument(help="heart, horse_colic, or a CSV (one row per case).")],
    out: Annotated[Path, typer.Option(help="Bundle folder to write.")],
    spec: Annotated[str | None, typer.Option(help="Label spec (each outcome's triage and advice); required for a CSV.")] = None,
    label_column: Annotated[str, typer.Option(help="The CSV's outcome column.")] = "label",
    group_column: Annotated[str | None, typer.Option(help="The CSV's patient/animal id: folds never split a group.")] = None,
    name: Annotated[str | None, typer.Option(help="Model name (default: the spec's).")] = None,
    version: Annotated[str, typer.Option(help="Model version.")] = "1",
    folds: Annotated[int, typer.Option(help="Cross-validation folds.")] = 5,
    alpha: Annotated[float, typer.Option(help="Conformal miscoverage (0.1: 90% sets).")] = 0.1,
    critical_miss_target: Annotated[float, typer.Option(help=CRITICAL_MISS_HELP.format(on="out-of-fold"))] = 0.02,
) -> None:
    """Train, cross-validate, calibrate and conformalise a clinical model; choose its decision rule; write it as a
    bundle."""
    from carelens.steps import build_clinical

    with progress_bar(f"cross-validating ({folds} folds)", folds) as advance:
        m = build_clinical(source, out, spec=spec, label_column=label_column, group_column=group_column, name=name,
                           version=version, folds=folds, alpha=alpha, critical_miss_target=critical_miss_target,
                           on_fold=advance)
    table = Table("cross-validated (out of fold)", "value")
    for k in ("auc", "balanced_accuracy", "accuracy", "brier", "ece_uncalibrated", "ece", "coverage", "mean_set_size"):
        if m.get(k) is not None:
            table.add_row(k, f"{m[k]:.3f}")
    console.print(table)
    _print_rule(m, "out of fold, cross-fitted")
    _print_level_agreement(m)
    for w in m.get("warnings", []):
        notice(w)
    console.print(f"{m['n']} cases {m['per_class']}; wrote {out}/bundle.json")


def _print_rule(m: dict[str, Any], where: str) -> None:
    """The decision rule a bundle was built with, and what it costs: critical-miss beside over-triage (``where``:
    the cases measured), against the set rule alone."""
    rule = m.get("decision_rule")
    if not rule:
        return

    def rate(k: str) -> str:  # None: every outcome triages at consultation_24 or above, none can be over-triaged
        return "n/a (no routine outcome)" if m.get(k) is None else f"{m[k]:.3f}"

    how = ("the most urgent outcome in the prediction set" if rule["chosen"] == "set" else
           f"escalate when the serious outcomes' probability reaches {rule['critical_threshold']:g}")
    console.print(f"decision rule shipped: {how} (critical-miss target {rule['target_critical_miss_rate']:g}"
                  + ("" if rule["met_on_val"] else ", met by no rule: the one missing fewest ships")
                  + f"{_bound(rule)})")
    console.print(f"  {where}: critical-miss {rate('critical_miss_rate')}, over-triage {rate('over_triage_rate')}; "
                  f"the set rule alone: critical-miss {rate('critical_miss_rate_set_rule')}, over-triage "
                  f"{rate('over_triage_rate_set_rule')}")


@app.command()
@_edge
def smoke(
    url: Annotated[str, typer.Argument(help="The running service, e.g. http://127.0.0.1:8000.")],
    models: Annotated[Path | None, typer.Option(help="The deployed bundles: every answer must be the one the bundle "
                                                     "gives locally (without: answers are only checked for form).")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="CARELENS_API_KEY", help="API key, if the service needs one.")] = None,
) -> None:
    """Check a running service after a deployment (exit code 1 when any check fails): health, readiness, the
    models it serves, a probe per model compared with the deployed bundles, a bad input refused."""
    from carelens.serve import smoke as run_smoke

    checks = run_smoke(url, api_key=api_key, models_dir=models)
    table = Table("check", "", "detail")
    for ch in checks:
        table.add_row(ch.name, "[green]ok[/green]" if ch.ok else "[red]FAILED[/red]", ch.detail)
    console.print(table)
    failed = [ch for ch in checks if not ch.ok]
    console.print(f"{len(checks) - len(failed)} of {len(checks)} checks passed")
    if failed:
        raise typer.Exit(1)


@app.command("ecg")
@_edge
def ecg_cmd(
    record: Annotated[Path, typer.Argument(help="A WFDB record (100, 100.hea), an .edf or a .csv (one column per lead).")],
    lead: Annotated[str | None, typer.Option(help="Lead to screen, by name or position (default: the lead where two "
                                                  "R-peak detectors agree most; MLII, else II, on a tie).")] = None,
    fs: Annotated[float | None, typer.Option(help="Sampling rate in Hz, for a CSV without a time column.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG strip with the detected beats here.")] = None,
    start: Annotated[float | None, typer.Option(help="Where the strip starts, in seconds (default: around the pause "
                                                     "when the screen found one, else at 0).")] = None,
    beats: Annotated[Path | None, typer.Option(help="A signal bundle that classifies each beat (carelens ecg-train).")] = None,
    report: Annotated[Path | None, typer.Option(help="Write an HTML report (findings, figures, strips) here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Screen an ECG's rate and rhythm from the signal: quality, R-peaks, heart rate, RR variability, triage."""
    from carelens.bundle import SignalBundle
    from carelens.ecg import StripWindow, evidence_window, longest_gap_window, read_ecg, screen, strip_png
    from carelens.predict import beat_classifier

    sig = read_ecg(record, fs)
    a, peaks = screen(sig, lead, classify=beat_classifier(SignalBundle.load(beats)) if beats else None)
    x = sig.samples[:, sig.lead_index(a.lead)]  # the lead the beats were found on
    shown = evidence_window(a, peaks, sig.fs) if start is None else StripWindow(start, f"from {start:g} s")
    if plot is not None:
        plot.parent.mkdir(parents=True, exist_ok=True)
        plot.write_bytes(strip_png(x, sig.fs, peaks, start_s=shown.start_s, highlight=shown.highlight,
                                   title=f"{sig.name} lead {a.lead}: {shown.caption}"))
    if report is not None:
        from carelens.report import write_ecg_report

        kept: list[StripWindow] = []  # the strip shown, the start and the longest gap; each place once
        for w in (shown, StripWindow(0.0, "from 0 s"), longest_gap_window(peaks, sig.fs)):
            if w is not None and all(w.start_s != k.start_s for k in kept):
                kept.append(w)
        write_ecg_report(a, [(w.caption, strip_png(x, sig.fs, peaks, start_s=w.start_s, highlight=w.highlight))
                             for w in kept], report)
    if as_json:
        typer.echo(a.model_dump_json(indent=2))
        return
    console.print(f"{_banner(a.triage.level)}: {a.triage.reason}")
    chosen = f" (of {', '.join(f'{k} {v:.3f}' for k, v in a.lead_agreement.items())}: detector agreement)" \
        if len(a.lead_agreement) > 1 else ""
    console.print(f"{sig.name}, lead {a.lead}{chosen}, {a.seconds:.0f} s at {a.fs:g} Hz; {a.beats} beats ({a.detector}); "
                  f"heart rate {a.heart_rate_bpm if a.heart_rate_bpm is not None else '-'} bpm; signal quality: "
                  f"{', '.join(a.quality_flags) or 'ok'}")
    table = Table("finding", "value", "rule", "triage")
    for f in a.findings:
        table.add_row(f.name, f"{f.value:g}", f.threshold, f.triage)
    if a.findings:
        console.print(table)
        for f in a.findings:
            console.print(f"[dim]{f.id}: {f.source}[/dim]")
    if a.beats_summary is not None:
        bs = a.beats_summary
        console.print(f"beats ({bs.model}): " + ", ".join(f"{c} {n} ({bs.per_hour[c]:g}/h)" for c, n in bs.counts.items())
                      + f"; unsure {bs.uncertain_share:.0%}, unlike the training beats {bs.out_of_distribution_share:.0%}")
    elif a.beats_note is not None:
        console.print(f"[yellow]{a.beats_note}[/yellow]")
    console.print(f"RR: mean {a.rr['mean_rr_ms']} ms, SDNN {a.rr['sdnn_ms']} ms, RMSSD {a.rr['rmssd_ms']} ms, "
                  f"longest {a.rr['longest_rr_s']} s, irregular windows {a.rr['irregular_share']:.0%}")
    console.print(a.advice)
    console.print(f"[dim]{a.disclaimer}[/dim]")
    for written in (plot, report):
        if written is not None:
            console.print(f"wrote {written}")


@app.command("triage")
@_edge
def triage_cmd(
    model: Annotated[Path | None, typer.Option(help="Image model bundle (folder or .zip) for --image.")] = None,
    image: Annotated[Path | None, typer.Option(help="An image to assess with --model.")] = None,
    symptoms: Annotated[str | None, typer.Option(help="Symptoms in plain words, e.g. 'itching, no fever'.")] = None,
    facts: Annotated[list[str] | None, typer.Option(
        help="Clinical facts as name=value, fused with the image (repeat or space-separate: 'age=54 sex=male').")] = None,
    symptom_model: Annotated[Path | None, typer.Option(
        help="Symptom bundle folder (default $CARELENS_SYMPTOMS_DIR; build one with `carelens symptoms build`).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    species: Annotated[str | None, typer.Option(help="The patient's species; a model of another one is refused.")] = None,
    more_facts: Annotated[list[str] | None, typer.Argument(
        metavar="[NAME=VALUE]...", help="More facts, so that `--facts age=7 sex=male` reads as written.",
        show_default=False)] = None,
) -> None:
    """Triage from an image (with clinical facts) and/or a symptom description: one assessment, safety first."""
    from carelens.fusion import parse_fact_pairs
    from carelens.symptoms import SymptomBundle, triage

    fact_values = parse_fact_pairs([*(facts or []), *(more_facts or [])])
    image_a, engine = None, None
    if image is not None or model is not None:
        if image is None or model is None:
            raise ConfigError("--image and --model go together (an image and the bundle that assesses it)")
        from carelens.bundle import load_bundle
        from carelens.data import read_image
        from carelens.predict import Engine

        engine = Engine(load_bundle(model))
        engine.bundle.labels.require_species(species, "the image model")
        checked = engine.check_facts(fact_values) if fact_values else None  # unknown names, bad values: errors
        image_a = engine.assess([read_image(image)], facts=[checked])[0][0]
    elif fact_values:
        raise ConfigError("--facts are fused with an image model trained with them; give --image and --model too")
    sym_dir = symptom_model or (Path(os.environ["CARELENS_SYMPTOMS_DIR"]) if os.environ.get("CARELENS_SYMPTOMS_DIR")
                                else None)
    sym = SymptomBundle.load(sym_dir) if sym_dir is not None and symptoms else None
    if sym is not None:
        sym.spec.require_species(species, "the symptom model")
    result = triage(image=image_a, text=symptoms, symptoms=sym, image_spec=engine.bundle.labels if engine else None,
                    policy=engine.policy if engine else None)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    _print_assessment(result)


LEVEL_COLOURS = {"self_care": "green", "consultation": "yellow", "consultation_24": "dark_orange", "emergency": "red",
                 "emergency_ambulance": "bold red"}


def _banner(level: str) -> str:
    """A triage level as the coloured heading the CLI prints (``consultation_24`` -> CONSULTATION 24)."""
    return f"[{LEVEL_COLOURS[level]}]{level.replace('_', ' ').upper()}[/{LEVEL_COLOURS[level]}]"


def _print_assessment(result: dict[str, Any]) -> None:
    a = result["assessment"]
    console.print(f"{_banner(a['triage']['level'])}: {a['triage']['reason']}")
    table = Table("condition", "probability", "group", "in plausible set")
    for c in a["top"]:
        table.add_row(c["name"], f"{c['probability']:.1%}", c["group"], "yes" if c["id"] in a["prediction_set"] else "")
    console.print(table)
    console.print(f"confidence: {a['confidence']}; based on: {', '.join(a['based_on'])}; "
                  f"flags: {', '.join(a['flags']) or 'none'}; looks like the training data: "
                  f"{'yes' if a['in_distribution'] else 'NO'} (ood score {a['ood_score']:.2f})")
    sym = result.get("symptoms")
    if sym:
        console.print(f"symptoms present: {', '.join(sym['present']) or '-'}; absent: {', '.join(sym['absent']) or '-'}"
                      + (f"; [yellow]not understood: {'; '.join(sym['not_understood'])}[/yellow]"
                         if sym["not_understood"] else ""))
    console.print(a["advice"])
    console.print(f"[dim]{a['disclaimer']}[/dim]")


@app.command()
@_edge
def serve(
    models: Annotated[Path | None, typer.Option(help="Folder of bundles (default $CARELENS_MODELS_DIR or ./models).")] = None,
    symptoms: Annotated[Path | None, typer.Option(help="Symptom bundle folder (default $CARELENS_SYMPTOMS_DIR).")] = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    trusted_keys: Annotated[Path | None, typer.Option(
        help="Folder of Ed25519 public keys (*.pem): only bundles signed by one of them are served.")] = None,
    allow_open: Annotated[bool, typer.Option(
        "--allow-open", help="Serve without API keys on an address other than loopback.")] = False,
    workers: Annotated[int | None, typer.Option(
        min=1, help="Service processes sharing the port and the database (default $CARELENS_WORKERS or 1).")] = None,
) -> None:
    """Serve the HTTP API and the web page (settings: CARELENS_* environment variables, see README)."""
    import uvicorn

    from carelens.serve import ServeSettings, create_app
    from carelens.serve.memory import tune_malloc

    tune_malloc()  # before any worker thread exists, and inherited by worker processes (bench/soak.py)
    overrides: dict[str, Any] = {}
    if models is not None:
        overrides["models_dir"] = models
    if symptoms is not None:
        overrides["symptoms_dir"] = symptoms
    if trusted_keys is not None:
        overrides["trusted_keys_dir"] = trusted_keys
    if workers is not None:
        overrides["workers"] = workers
    settings = ServeSettings(**overrides)
    if settings.workers > 1:
        settings = _worker_settings(settings, overrides)
    app_ = create_app(settings)  # a missing keys file or key folder stops here, before anything listens;
    # the audit database is migrated here too, once, before any worker opens it
    if not app_.state.services.keys.enabled:
        if host not in ("127.0.0.1", "localhost", "::1") and not allow_open:
            raise ConfigError(f"no API keys are set, so the service would be open to anyone who reaches {host}. "
                              "Set CARELENS_API_KEYS or CARELENS_API_KEYS_FILE, bind 127.0.0.1, or pass --allow-open.")
        err_console.print("[bold yellow]! WARNING: no API keys are set: anyone who can reach this address can use the "
                          "service and reload its models. Set CARELENS_API_KEYS for anything but a local trial."
                          "[/bold yellow]")
    console.print(f"carelens serving {settings.models_dir} on http://{host}:{port}/ (API docs at /docs)"
                  + (f" with {settings.workers} workers" if settings.workers > 1 else ""))
    if settings.workers > 1:  # each worker process builds its own app from the environment set above
        uvicorn.run("carelens.serve.app:create_app", factory=True, workers=settings.workers, host=host, port=port,
                    log_level="warning")
    else:
        uvicorn.run(app_, host=host, port=port, log_level="warning")


def _worker_settings(settings: ServeSettings, overrides: dict[str, Any]) -> ServeSettings:
    """Settings for several worker processes, handed to them through the environment: the command line's
    overrides; a metrics folder, emptied of a previous run's counts (as Prometheus' multiprocess mode requires);
    the cores shared out among the workers' batches in flight (ONNX Runtime threads)."""
    import tempfile

    from carelens.settings import threads_per_process

    env = {f"CARELENS_{k.upper()}": str(v) for k, v in overrides.items()}
    folder = settings.metrics_dir or Path(tempfile.mkdtemp(prefix="carelens-metrics-"))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("worker-*.json"):
        stale.unlink()
    env["CARELENS_METRICS_DIR"] = str(folder)
    if settings.threads is None:
        env["CARELENS_THREADS"] = str(threads_per_process(settings.workers * settings.batches_in_flight))
    os.environ.update(env)
    return type(settings)()


@keys_app.command("generate")
@_edge
def keys_generate(
    out: Annotated[Path, typer.Option(help="Folder for private.pem (keep it secret) and public.pem.")] = Path("keys"),
) -> None:
    """Make an Ed25519 key pair for signing bundles (`carelens keys sign`, `carelens export --sign`, `carelens serve
    --trusted-keys`)."""
    from carelens.bundle import generate_keys

    private, public = generate_keys(out)
    console.print(f"wrote {private} (keep it secret) and {public} (give it to the services that load your bundles)")


@keys_app.command("sign")
@_edge
def keys_sign(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder of any kind: exported, imported, clinical, ECG or "
                                                "symptom.")],
    key: Annotated[Path, typer.Option(help="Ed25519 private key (PEM) of `carelens keys generate`.")],
) -> None:
    """Sign a bundle (bundle.sig beside its bundle.json) for services that accept only signed bundles
    (`carelens serve --trusted-keys`); the bundle is checked first: one that fails its integrity or self-test is
    not signed."""
    from carelens.bundle import load_any, sign_bundle
    from carelens.symptoms import SymptomBundle

    if not bundle.is_dir():
        raise ConfigError(f"{bundle} is not a bundle folder; sign the folder (a .zip bundle: unzip it first)")
    if (bundle / "symptoms.json").is_file():
        doc = SymptomBundle.load(bundle, encoder=None).doc
        name, version = doc["name"], doc["version"]
    else:
        b = load_any(bundle)
        name, version = b.name, b.version
    path = sign_bundle(bundle, key)
    console.print(f"signed {name} {version}: wrote {path}")


@audit_log_app.command("upgrade")
@_edge
def audit_log_upgrade(
    url: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default $CARELENS_DATABASE_URL).")] = None,
) -> None:
    """Upgrade the audit database's schema in place to this carelens's (the service also does it when it starts)."""
    from carelens.serve import ServeSettings
    from carelens.serve.storage import display_url, migrate, open_engine

    target = url or ServeSettings().database_url
    before, after = migrate(open_engine(target))
    console.print(f"{display_url(target)}: schema revision {before or 'none (new database)'} -> {after}"
                  + (" (already up to date)" if before == after else ""))


@audit_log_app.command("prune")
@_edge
def audit_log_prune(
    days: Annotated[int | None, typer.Option(help="Delete rows older than this (default $CARELENS_RETENTION_DAYS).")] = None,
) -> None:
    """Delete audit-log rows (and their feedback) older than the retention period."""
    from carelens.serve import ServeSettings
    from carelens.serve.storage import AuditLog, display_url

    settings = ServeSettings()
    keep = days or settings.retention_days
    if keep is None:
        raise ConfigError("give --days or set CARELENS_RETENTION_DAYS")
    n = AuditLog(settings.database_url).prune(keep)
    console.print(f"deleted {n} prediction(s) older than {keep} days from {display_url(settings.database_url)}")


@data_app.command("fetch")
@_edge
def fetch(
    family: Annotated[str, typer.Argument(help="Dataset family: medmnist or kaggle.")],
    name: Annotated[str, typer.Argument(help="Set name: pneumoniamnist (medmnist); OWNER/DATASET or ham10000, "
                                             "chest_xray, busi (kaggle).")],
    size: Annotated[int, typer.Option(help="Image size: 28, 64, 128 or 224.")] = 28,
    data_dir: Annotated[Path | None, typer.Option(help="Local folder to look in first (default $CARELENS_DATA).")] = None,
    out: Annotated[Path, typer.Option(help="Where downloads go.")] = Path("data"),
    offline: Annotated[bool, typer.Option(help="Never download; use the local folder only.")] = False,
) -> None:
    """Download a MedMNIST set (official MD5 checked) or a Kaggle dataset (official client, your API token,
    checksums recorded), or find it in a local folder."""
    from carelens.data import MEDMNIST, fetch_kaggle, fetch_medmnist, md5sum, read_medmnist
    from carelens.settings import data_root

    local = data_dir or data_root()
    if family == "kaggle":
        with progress_bar(f"fetching {name}", None):
            folder = fetch_kaggle(name, out, data_dir=local, offline=offline)
        files = sum(1 for p in folder.rglob("*") if p.is_file())
        typer.echo(json.dumps({"path": str(folder), "files": files}))
        return
    if family != "medmnist":
        raise ConfigError(f"unknown dataset family {family!r}; known: medmnist, kaggle")
    with progress_bar(f"downloading {name}", None) as advance:
        last = [0]

        def on_chunk(done: int, total: int) -> None:
            advance(done - last[0])
            last[0] = done

        path = fetch_medmnist(name, size, data_dir=local, download_dir=out, offline=offline, progress=on_chunk)
    digest = md5sum(path)
    official = MEDMNIST[name].md5[size]
    ds = read_medmnist(path, name)
    counts = {s: sum(1 for e in ds if e.split == s) for s in ("train", "val", "test")}
    # machine-readable result on stdout, unwrapped whatever the terminal width; the warning on stderr
    typer.echo(json.dumps({"path": str(path), "md5": digest, "official_md5": digest == official, "counts": counts}))
    if digest != official:
        err_console.print(f"[yellow]! {path.name} is a local copy whose MD5 is not the official one ({official}).[/yellow]")


@data_app.command("synth")
@_edge
def synth(
    kind: Annotated[str, typer.Argument(help="What to generate: 'multilabel' (skin conditions with severity) or "
                                             "'dog' (dog skin photos + owners' symptom reports).")],
    out: Annotated[Path, typer.Option(help="Folder to write into.")],
    n: Annotated[int, typer.Option(help="Images (multilabel: mirrored twins come on top).")] = 600,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    size: Annotated[int, typer.Option(help="Image side in pixels.")] = 96,
) -> None:
    """Write a synthetic set with known labels (for tests, benchmarks and trying the pipeline)."""
    from carelens.data import write_synthetic_dog_cases, write_synthetic_multilabel

    if kind == "multilabel":
        root = write_synthetic_multilabel(out, n=n, seed=seed, size=size)
        console.print(f"wrote {len(list(root.glob('*/*/*.png')))} images to {root}/ (train with --spec skin_conditions)")
    elif kind == "dog":
        root = write_synthetic_dog_cases(out, n=n, seed=seed, size=size)
        console.print(f"wrote {n} cases to {root}/cases.csv (train with --spec dog_skin) and the owners' symptom table "
                      f"{root}/symptom_table.csv (carelens symptoms build --table ... --spec dog_skin --species dog)")
    else:
        raise ConfigError(f"unknown synthetic set {kind!r}; known: multilabel, dog")


@scenarios_app.command("run")
@_edge
def scenarios_run(
    file: Annotated[str, typer.Argument(help="Scenario YAML, or 'owner' for the scenarios that ship.")] = "owner",
    models: Annotated[Path | None, typer.Option(help="Run in-process on these bundles (with a scripted language model).")] = None,
    symptoms: Annotated[Path | None, typer.Option(help="Symptom bundle for --models.")] = None,
    url: Annotated[str | None, typer.Option(help="Run against a running service instead (language-model steps skip).")] = None,
    api_key: Annotated[str | None, typer.Option(help="API key for --url.")] = None,
    out: Annotated[Path, typer.Option(help="Report folder (report.html, results.json).")] = Path("scenario_report"),
) -> None:
    """Run scripted end-to-end scenarios through /v1/chat and write an HTML report, failures first."""
    import tempfile
    from importlib import resources

    import httpx

    from carelens.scenarios import load_scenarios, run_scenarios, scripted_llm, write_scenario_report

    if (models is None) == (url is None):
        raise ConfigError("give --models DIR (in-process) or --url URL (a running service)")
    path = Path(str(resources.files("carelens") / "scenarios" / "owner.yaml")) if file == "owner" else Path(file)
    doc = load_scenarios(path)
    if url is not None:
        with httpx.Client(base_url=url, headers={"X-API-Key": api_key} if api_key else {}, timeout=120) as client:
            results = run_scenarios(doc, client)
    else:
        from fastapi.testclient import TestClient

        from carelens.explain import LlmSettings
        from carelens.serve import ServeSettings, create_app

        with scripted_llm() as llm, tempfile.TemporaryDirectory() as tmp:
            settings = ServeSettings(models_dir=models, symptoms_dir=symptoms, database_url=f"sqlite:///{tmp}/chat.db",
                                     llm=LlmSettings(url=llm.url, model="scripted", timeout_s=3.0))
            with TestClient(create_app(settings)) as client:
                results = run_scenarios(doc, client, llm=llm)
    report = write_scenario_report(results, out, doc.title)
    passed = sum(r.passed for r in results)
    for r in sorted(results, key=lambda r: r.passed):
        mark = "[green]passed[/green]" if r.passed else ("[grey]skipped[/grey]" if r.skipped else "[red]FAILED[/red]")
        console.print(f"{mark} {r.name}")
    console.print(f"{passed} of {len(results)} scenarios passed; wrote {report}")


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      file: Any = None, line: str | None = None) -> None:
    """A warning as the CLI's other notices are shown: one yellow line on stderr, no source location."""
    notice(str(message))


def main() -> None:
    warnings.showwarning = _one_line_warning
    app()


if __name__ == "__main__":
    main()
