"""The self-contained HTML evaluation report: images embedded, no scripts, fonts or network."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from carelens import plots
from carelens.ecg import EcgAssessment
from carelens.policy import rule_bound_text
from carelens.predict import Engine, overlay_heatmap
from carelens.report.evaluate import Evaluation, save_predictions
from carelens.report.tabular import TableEvaluation

__all__ = ["write_comparison", "write_ecg_report", "write_report", "write_table_report"]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1d2430;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:14px}th,td{border:1px solid #d5d9e0;padding:4px 8px;text-align:right}
th{background:#f2f4f7}td:first-child,th:first-child{text-align:left}.worst{background:#fde8e8}
.ok{color:#1a7f37}.bad{color:#b42318}.grid{display:flex;flex-wrap:wrap;gap:16px}.grid figure{margin:0}
figcaption{font-size:13px;color:#555}.card{border:1px solid #d5d9e0;border-radius:6px;padding:8px;width:230px;font-size:12px}
.card img{max-width:100%}.note{font-size:13px;color:#555}.disclaimer{margin-top:32px;font-size:12px;color:#666}
"""


def _img_tag(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _thumb(img: np.ndarray, size: int = 200) -> bytes:
    pil = Image.fromarray(img)
    pil.thumbnail((size, size))
    buf = io.BytesIO()
    pil.save(buf, "PNG")
    return buf.getvalue()


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "n/a"
    return f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))


def _run(beats: int, seconds: float) -> str:
    return f"{beats} beats, {seconds:g} s" if beats else "none"


def _summary_rows(m: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    anchors = m.get("anchors", {})

    def anchor(suffix: str) -> str | None:
        found = [f"{v:.3f} ({k.replace('_', ' ')})" for k, v in anchors.items() if k.endswith(suffix)]
        return "; ".join(found) or None

    anchor_acc, anchor_auc = anchor("_acc"), anchor("_auc")
    return [
        ("balanced accuracy (mean recall)", m["balanced_accuracy"], anchor("balanced_accuracy_no_external_data")),
        ("accuracy", m["accuracy"], anchor_acc),
        ("majority-class accuracy (floor)", m["majority_baseline_accuracy"], None),
        ("macro AUC", m["macro_auc"], anchor_auc),
        ("ECE before / after temperature", f"{m['ece_before']:.3f} / {m['ece']:.3f}", None),
        *([("ECE a perfectly calibrated model would show on these images (5th-95th percentile)",
            f"{m['ece_floor']['p05']:.3f}-{m['ece_floor']['p95']:.3f}", None)] if m.get("ece_floor") else []),
        (f"conformal coverage (target {m['coverage_target']:.2f})", m["coverage"], None),
        ("lowest class coverage", m["min_class_coverage"], None),
        ("mean prediction set size", m["mean_set_size"], None),
        ("OOD gate pass rate (in-distribution)", m["ood_pass_rate"], None),
        (_CRITICAL_MISS, _critical_miss(m), None),
        ("over-triage rate (other cases sent to consultation_24 or above)", m.get("over_triage_rate"), None),
        *([(_OOD_AT_FLOOR, _pair(m, "critical_miss_rate_ood_at_floor", "over_triage_rate_ood_at_floor"), None)]
          if "critical_miss_rate_ood_at_floor" in m else []),
        ("edge cases answered as uncertain / out of distribution", m["edge_cases_handled"], None),
    ]


def _figure_rows(rows: list[tuple[str, Any, Any]]) -> str:
    """Summary table rows: the figure, its value, and a reference beside it (blank where there is none)."""
    return "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td><td>{_fmt(ref) if ref is not None else ''}</td></tr>"
                   for k, v, ref in rows)


def _critical_miss(m: dict[str, Any]) -> Any:
    """The rate, or why there is none: no critical class in the label spec (nothing escalates), or no critical
    case among these images."""
    if m["critical_miss_rate"] is not None:
        return m["critical_miss_rate"]
    if "critical_classes" in m and not m["critical_classes"]:
        return ("n/a: no class of the label spec is critical (severity high or critical), so no answer escalates; "
                "give the data a spec that says which conditions must not be missed")
    return "n/a: no critical case among these images"


_CRITICAL_MISS = "critical-miss rate (critical cases triaged below their level, at least consultation_24)"
_OOD_AT_FLOOR = ("critical-miss / over-triage rate had out-of-distribution images been answered at the floor level "
                 "alone (the shipped rule keeps an urgent finding's level on an unusual image)")


def _pair(m: dict[str, Any], a: str, b: str) -> str:
    return f"{_fmt(m[a])} / {_fmt(m[b])}"


def _per_class_table(m: dict[str, Any], class_ids: list[str], pooled: Sequence[int] = ()) -> str:
    """``pooled``: classes whose sets share one threshold (covered together, not each): marked."""
    worst = set(m["worst_classes"][: 1 if len(class_ids) <= 3 else 2])  # of two classes, one is the worse
    rows = []
    for i, c in enumerate(class_ids):
        pc = m["per_class"][c]
        cls = ' class="worst"' if c in worst else ""
        rows.append(
            f"<tr{cls}><td>{html.escape(c)}{' (worst)' if c in worst else ''}</td><td>{pc['support']}</td>"
            f"<td>{_fmt(pc['precision'])}</td><td>{_fmt(pc['recall'])}</td><td>{_fmt(pc['f1'])}</td>"
            f"<td>{_fmt(pc['auc'])}</td><td>{_fmt(m['per_class_coverage'][c])}{' *' if i in pooled else ''}</td></tr>"
        )
    note = ("<p>* pooled: these classes share one set threshold, so the target coverage holds for them together, "
            "not for each (each other class is covered on its own).</p>" if pooled else "")
    return ('<table id="per-class"><tr><th>class</th><th>support</th><th>precision</th><th>recall</th><th>F1</th>'
            "<th>AUC</th><th>set coverage</th></tr>" + "".join(rows) + "</table>" + note)


def _facts_section(m: dict[str, Any]) -> str:
    f = m.get("facts_fusion")
    if not f:
        return ""
    rows = "".join(f"<tr><td>{k.replace('_', ' ')}</td><td>{_fmt(f.get(k + '_image'))}</td><td>{_fmt(f.get(k))}</td></tr>"
                   for k in ("balanced_accuracy", "accuracy", "macro_auc", "ece", "nll", "coverage", "mean_set_size",
                             "critical_miss_rate", "over_triage_rate"))
    return (f"<h2>Image + clinical facts</h2><p class=\"note\">The bundle fuses {html.escape(', '.join(f['facts']))} "
            f"with the image (log-linear pooling fitted on validation data). Same test images; in "
            f"{f['conflict_rate']:.1%} of them the facts overturned a fairly sure image finding (flagged "
            f"<i>symptom conflict</i>, plausible set widened). The facts may raise a triage level, never lower it "
            f"below the image's own.</p><table id=\"facts\"><tr><th>figure</th>"
            f"<th>image alone</th><th>image + facts</th></tr>{rows}</table>")


def _gallery(ev: Evaluation, n: int = 8) -> str:
    a = ev.arrays
    pred = ev.called
    wrong = np.nonzero(pred != a["y"])[0]
    worst = wrong[np.argsort(-a["proba"][wrong, pred[wrong]])][:n]
    if len(worst) == 0:
        return "<p>No mistakes on this split.</p>"
    engine = Engine(ev.bundle)
    pos = {e.id: i for i, e in enumerate(ev.dataset)}
    cards = []
    class_ids = ev.bundle.spec.class_ids
    for r in worst:
        img = ev.dataset.load_image(pos[ev.ids[r]])
        (asm, heat), = engine.assess([img], heatmaps=True)
        overlay = overlay_heatmap(img, heat) if heat is not None else _thumb(img)
        thumb = _thumb(np.asarray(Image.open(io.BytesIO(overlay)).convert("RGB")))
        cards.append(
            f'<div class="card">{_img_tag(thumb, ev.ids[r])}<br><b>{html.escape(ev.ids[r])}</b><br>'
            f"true: {class_ids[a['y'][r]]}, predicted: {asm.top[0].id} ({asm.top[0].probability:.2f})<br>"
            f"set: {', '.join(asm.prediction_set)}; {asm.confidence}; triage <b>{asm.triage.level}</b></div>"
        )
    return '<div class="grid" id="errors">' + "".join(cards) + "</div>"


def _edge_table(ev: Evaluation) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(e.case)}</td><td>{e.top} ({e.probability:.2f})</td><td>{e.confidence}</td>"
        f"<td>{'yes' if e.in_distribution else 'no'}</td><td>{e.triage}</td>"
        f"<td class=\"{'ok' if e.handled else 'bad'}\">{'handled' if e.handled else 'NOT flagged'}</td></tr>"
        for e in ev.edge_cases
    )
    return ('<table id="edge-cases"><tr><th>input</th><th>top class</th><th>confidence</th><th>in distribution</th>'
            "<th>triage</th><th>verdict</th></tr>" + rows + "</table>")


def _figures(ev: Evaluation) -> str:
    m, a = ev.metrics, ev.arrays
    ids = ev.bundle.spec.class_ids
    figs = [
        ("Confusion matrix", plots.confusion_png(m["confusion_matrix"], ids)),
        ("Reliability diagram", plots.reliability_png(m["reliability_before"], m["reliability"])),
        ("Risk-coverage: accuracy when only the most confident cases are answered",
         plots.risk_coverage_png(a["proba"].max(1), (ev.called == a["y"]).astype(float))),
        ("Prediction set sizes", plots.set_size_png(m["set_size_histogram"])),
        ("ROC curves (one vs rest)", plots.roc_png(a["y"], a["proba"], ids)),
        ("OOD score: test images vs edge cases", plots.ood_histogram_png(a["ood_raw"], ev.edge_ood,
                                                                          ev.bundle.ood.threshold_)),
    ]
    return '<div class="grid">' + "".join(
        f"<figure>{_img_tag(png, cap)}<figcaption>{html.escape(cap)}</figcaption></figure>" for cap, png in figs
    ) + "</div>"


def _operating_points_section(ev: Evaluation) -> str:
    ops = ev.bundle.spec.calibration.get("operating_points")
    if not ops:
        return ""
    rows = "".join(
        f"<tr><td>{v['alpha']:g}</td><td>{_fmt(v['critical_miss_rate'])}</td><td>{_fmt(v['over_triage_rate'])}</td>"
        f"<td>{_fmt(v['coverage'])}</td><td>{_fmt(v['mean_set_size'])}</td></tr>" for v in ops["val"])
    png = plots.operating_points_png(ops["val"], ops.get("test"))
    return (f"<h2>Operating points: the price of safety</h2><p class=\"note\">The set rule escalates to the most "
            f"urgent class in the conformal set; a smaller alpha gives larger sets, fewer missed critical cases and "
            f"more routine cases sent to urgent care. Measured at calibration (validation, cross-fitted); this bundle "
            f"ships alpha = {ev.bundle.alpha:g}. Choose with <code>carelens calibrate --alpha</code>.</p>"
            f"<div class=\"grid\"><figure>{_img_tag(png, 'operating points')}</figure>"
            f"<table id=\"operating-points\"><tr><th>alpha</th><th>critical-miss</th><th>over-triage</th>"
            f"<th>coverage</th><th>mean set size</th></tr>{rows}</table></div>")


def _decision_rule_section(ev: Evaluation) -> str:
    """The decision rule the bundle ships against every candidate: the set rule and each escalation threshold, their
    critical-miss and over-triage rates on validation (cross-fitted: what chose) and test (for reading)."""
    rule = ev.bundle.spec.calibration.get("decision_rule")
    if not rule:
        return ""
    chosen = rule["critical_threshold"]
    multilabel = ev.bundle.layout is not None
    set_rule = ("the conditions present or kept decide" if multilabel else "the most urgent class in the set decides")
    escalate = ("a condition that can need urgent care counts from probability" if multilabel else
                "escalate when the serious classes' summed probability reaches")
    how = set_rule if chosen is None else f"{escalate} {chosen:g}"
    met = "" if rule["met_on_val"] else " No rule met the target there: the one missing fewest ships."
    bound = rule_bound_text(rule)
    met += f" {bound[0].upper()}{bound[1:]}." if bound else ""
    png = plots.operating_points_png(rule["val"], rule.get("test"), key="critical_threshold",
                                     name=lambda t: "set" if t is None else f"{t:g}",
                                     labelled={None, chosen, 0.01, 0.05, 0.1, 0.2, 0.3}, shipped={chosen})
    test = {r["critical_threshold"]: r for r in rule.get("test", [])}
    rows = "".join(
        f"<tr><td>{'set rule' if v['critical_threshold'] is None else html.escape(escalate + ' ' + format(v['critical_threshold'], 'g'))}"
        f"{' (shipped)' if v['critical_threshold'] == chosen else ''}</td><td>{_fmt(v['critical_miss_rate'])}</td>"
        f"<td>{_fmt(v['over_triage_rate'])}</td>"
        f"<td>{_fmt(test.get(v['critical_threshold'], {}).get('critical_miss_rate'))}</td>"
        f"<td>{_fmt(test.get(v['critical_threshold'], {}).get('over_triage_rate'))}</td></tr>"
        for v in rule["val"] if v["critical_threshold"] in (None, chosen))
    return (f"<h2>Decision rule: what escalating earlier buys and costs</h2><p class=\"note\">Shipped: "
            f"{html.escape(how)}, chosen on validation (cross-fitted) as the rule that keeps the critical-miss rate at "
            f"or under {rule['target_critical_miss_rate']:g} with the least over-triage.{met} Each point is a "
            f"candidate (the set rule, and each threshold); the test figures are for reading, not for choosing. "
            f"Choose the target with <code>carelens calibrate --critical-miss-target</code>.</p>"
            f"<div class=\"grid\"><figure>{_img_tag(png, 'decision rules')}</figure>"
            f"<table id=\"decision-rule\"><tr><th>rule</th><th>critical-miss (val)</th><th>over-triage (val)</th>"
            f"<th>critical-miss (test)</th><th>over-triage (test)</th></tr>{rows}</table></div>")


def _triage_section(m: dict[str, Any]) -> str:
    """The level each case was given against its own level (its class's; multi-label: its most urgent true
    finding's): a table of counts and the shares given a less urgent, the same and a more urgent level."""
    t = m.get("triage_agreement")
    if not t or not any(map(any, t["counts"])):
        return ""
    counts = np.asarray(t["counts"])
    used = np.flatnonzero(counts.sum(0) + counts.sum(1))
    span = slice(int(used.min()), int(used.max()) + 1)  # the levels between the least and the most urgent that occur
    png = plots.confusion_png(counts[span, span].tolist(), t["levels"][span], xlabel="level given",
                              ylabel="the case's own level", row_title="share of each own level")
    return (f'<h2>Triage given against each case\'s own level</h2><p class="note">Rows: the level the true '
            f"{'findings need' if m.get('per_label') else 'class triages at'}; columns: the level the decision gave. "
            f"Below the diagonal is under-triage, above it escalation: the over-triage rate counts only routine cases "
            f"sent to consultation_24 or above, this table also shows an urgent case sent to an ambulance.</p>"
            f'<table id="triage-agreement"><tr><th>given a less urgent level</th><th>its own level</th>'
            f"<th>a more urgent level</th></tr><tr><td>{_fmt(t['below_own_level_rate'])}</td>"
            f"<td>{_fmt(t['same_level_rate'])}</td><td>{_fmt(t['above_own_level_rate'])}</td></tr></table>"
            f"{_img_tag(png, 'triage level given against each case own level')}")


def _multilabel_body(ev: Evaluation) -> str:
    """Summary, per-condition table, per-condition reliability diagrams and per-finding heatmaps."""
    m = ev.metrics
    sev = m["severity"]
    rows = [
        ("macro F1 (at the per-condition thresholds)", m["macro_f1"]), ("micro F1", m["micro_f1"]),
        ("macro AUC", m["macro_auc"]), ("subset accuracy (every condition right)", m["subset_accuracy"]),
        ("Hamming loss", m["hamming_loss"]),
        (f"false-negative rate of the kept conditions (target {m['fnr_target']:g})", m["fnr"]),
        ("conditions kept / present / true per image", (f"{m['mean_kept']:.2f} / {m['mean_present']:.2f} / "
                                                        f"{m['mean_true']:.2f}")),
        ("severity: accuracy / weighted F1 / MAE / QWK", (f"{_fmt(sev.get('accuracy'))} / {_fmt(sev.get('weighted_f1'))} / "
                                                         f"{_fmt(sev.get('mae'))} / {_fmt(sev.get('qwk'))}")),
        ("ECE before / after per-condition temperature", f"{m['ece_before']:.3f} / {m['ece']:.3f}"),
        ("OOD gate pass rate (in-distribution)", m["ood_pass_rate"]),
        ("critical-miss rate (cases needing consultation_24 or more triaged below what they need)", m["critical_miss_rate"]),
        ("over-triage rate (other cases sent to consultation_24 or above)", m["over_triage_rate"]),
        *([(_OOD_AT_FLOOR, _pair(m, "critical_miss_rate_ood_at_floor", "over_triage_rate_ood_at_floor"))]
          if "critical_miss_rate_ood_at_floor" in m else []),
        ("edge cases answered as uncertain / out of distribution", m["edge_cases_handled"]),
    ]
    summary = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in rows)
    per = "".join(
        f"<tr><td>{html.escape(c)}</td><td>{v['support']}</td><td>{_fmt(v['precision'])}</td><td>{_fmt(v['recall'])}</td>"
        f"<td>{_fmt(v['f1'])}</td><td>{_fmt(v['auc'])}</td><td>{_fmt(m['per_label_calibration'][c]['ece'])}</td>"
        f"<td>{_fmt(sev.get('per_condition', {}).get(c, {}).get('qwk'))}</td></tr>" for c, v in m["per_label"].items())
    figs = "".join(
        f"<figure>{_img_tag(plots.reliability_png(v['reliability_before'], v['reliability']), c)}"
        f"<figcaption>{html.escape(c)}</figcaption></figure>" for c, v in m["per_label_calibration"].items())
    return (f'<h2>Summary</h2><table id="summary"><tr><th>figure</th><th>value</th></tr>{summary}</table>'
            f"{_decision_rule_section(ev)}{_triage_section(m)}"
            f'<h2>Per condition</h2><table id="per-class"><tr><th>condition</th><th>support</th><th>precision</th>'
            f"<th>recall</th><th>F1</th><th>AUC</th><th>ECE</th><th>severity QWK</th></tr>{per}</table>"
            f'<h2>Reliability per condition (before / after temperature)</h2><div class="grid">{figs}</div>'
            f"<h2>Findings with heatmaps</h2><p class=\"note\">One class-activation map per condition reported "
            f"present.</p>{_finding_gallery(ev)}")


def _finding_gallery(ev: Evaluation, n: int = 6) -> str:
    engine = Engine(ev.bundle)
    pos = {e.id: i for i, e in enumerate(ev.dataset)}
    busiest = np.argsort(-ev.arrays["in_set"].sum(1), kind="stable")[:n]
    cards = []
    for r in busiest:
        img = ev.dataset.load_image(pos[ev.ids[r]])
        inf = engine.infer([img])
        a = engine.decide(inf, 0)
        maps = engine.finding_heatmaps(inf, 0, img.shape[:2])
        truth = ", ".join(f"{c}:{lv or '?'}" for c, lv in (ev.dataset[pos[ev.ids[r]]].findings or {}).items()) or "none"
        tiles = "".join(_img_tag(_thumb(np.asarray(Image.open(io.BytesIO(overlay_heatmap(img, h))).convert("RGB")), 140),
                                 cid) + f"<br>{html.escape(cid)}<br>" for cid, h in maps.items())
        found = ", ".join(f"{f.id} ({f.probability:.2f}, {f.severity or '-'})" for f in a.findings if f.present)
        cards.append(f'<div class="card"><b>{html.escape(ev.ids[r])}</b><br>true: {html.escape(truth)}<br>'
                     f"found: {html.escape(found or 'none')}; triage <b>{a.triage.level}</b><br>{tiles}</div>")
    return '<div class="grid" id="findings">' + "".join(cards) + "</div>"


def write_report(ev: Evaluation, out: str | Path) -> Path:
    """Write report.html, metrics.json and predictions.npz into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_predictions(ev, out)
    (out / "metrics.json").write_text(json.dumps(ev.metrics, indent=1))
    m = ev.metrics
    if ev.bundle.layout is not None:
        return _write_multilabel_report(ev, out)
    title = f"carelens evaluation: {ev.bundle.name} {ev.bundle.version} on {ev.dataset.name} ({ev.split})"
    summary = _figure_rows(_summary_rows(m))
    fp_note = ("" if m["bundle_data_fingerprint"] == m["data_fingerprint"] else
               '<p class="bad">This data differs from the data the model was trained on (fingerprint mismatch).</p>')
    body = f"""<p class="note">Date {m['date']} &middot; data fingerprint {m['data_fingerprint'][:16]}&hellip; &middot; {m['n']} images.
Balanced accuracy (mean per-class recall) is the headline figure: accuracy alone rewards predicting the majority class.</p>
{fp_note}
<h2>Summary</h2><table id="summary"><tr><th>figure</th><th>value</th><th>published anchor</th></tr>{summary}</table>
<h2>Per class</h2>{_per_class_table(m, ev.bundle.spec.class_ids, ev.bundle.conformal.pooled if ev.bundle.conformal else ())}
{_facts_section(m)}{_operating_points_section(ev)}{_decision_rule_section(ev)}{_triage_section(m)}<h2>Figures</h2>{_figures(ev)}
<h2>Most confident mistakes</h2><p class="note">Heatmaps show where the model looked for its top class.</p>{_gallery(ev)}
"""
    return _write_evaluation_page(ev, out, title, body)


def _write_multilabel_report(ev: Evaluation, out: Path) -> Path:
    m = ev.metrics
    title = f"carelens evaluation: {ev.bundle.name} {ev.bundle.version} on {ev.dataset.name} ({ev.split})"
    body = f"""<p class="note">Date {m['date']} &middot; data fingerprint {m['data_fingerprint'][:16]}&hellip; &middot; {m['n']} images.
A multi-label model: each image may show several conditions, each with a severity. Conformal risk control keeps
conditions so that the expected share of present conditions missed is at most {m['fnr_target']:g}.</p>
{_multilabel_body(ev)}
"""
    return _write_evaluation_page(ev, out, title, body)


def _write_evaluation_page(ev: Evaluation, out: Path, title: str, body: str) -> Path:
    """An evaluation report's page: its body, then the edge cases and the disclaimer, as out/report.html."""
    path = out / "report.html"
    path.write_text(_page(title, body + '<h2>Edge cases</h2><p class="note">Each should come out uncertain or out of '
                          f'distribution.</p>{_edge_table(ev)}', "Not a diagnosis. Figures describe this model on "
                          "this data only."), encoding="utf-8")
    return path


def write_table_report(ev: TableEvaluation, out: str | Path) -> Path:
    """A clinical bundle measured on a table of cases: report.html and metrics.json into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    m, b = ev.metrics, ev.metrics["at_build"]
    (out / "metrics.json").write_text(json.dumps(m | {"refused_rows": ev.refused}, indent=1))
    rows = [("balanced accuracy (mean recall)", m["balanced_accuracy"], b.get("balanced_accuracy")),
            ("accuracy", m["accuracy"], b.get("accuracy")),
            ("majority-class accuracy (floor)", m["majority_baseline_accuracy"], None),
            ("macro AUC", m["macro_auc"], b.get("auc")),
            ("ECE before / after temperature", f"{m['ece_before']:.3f} / {m['ece']:.3f}", b.get("ece")),
            ("ECE a perfectly calibrated model would show on these cases (5th-95th percentile)",
             f"{m['ece_floor']['p05']:.3f}-{m['ece_floor']['p95']:.3f}", None),
            (f"conformal coverage (target {m['coverage_target']:.2f})", m["coverage"], b.get("coverage")),
            ("mean prediction set size", m["mean_set_size"], b.get("mean_set_size")),
            (_CRITICAL_MISS, _critical_miss(m), b.get("critical_miss_rate")),
            ("over-triage rate (other cases sent to consultation_24 or above)", m.get("over_triage_rate"),
             b.get("over_triage_rate"))]
    summary = _figure_rows(rows)
    prevalence = "".join(f"<tr><td>{html.escape(c)}</td><td>{_fmt(v)}</td><td>{_fmt(m['prevalence_at_build'].get(c))}</td></tr>"
                         for c, v in m["prevalence"].items())
    rule = m["decision_rule"]
    how = ("the most urgent outcome in the prediction set" if rule.get("critical_threshold") is None else
           f"escalation when the serious outcomes' probability reaches {rule['critical_threshold']:g}")
    how += f"; {rule_bound_text(rule)}" if rule_bound_text(rule) else ""
    refused = "".join(f'<tr><td>{r["row"]}</td><td style="text-align:left">{html.escape(r["reason"])}</td></tr>'
                      for r in ev.refused)
    title = f"carelens evaluation: {ev.bundle.name} {ev.bundle.version} on {ev.source}"
    body = f"""<p class="note">Date {m['date']} &middot; {m['rows']} rows: {m['assessed']} assessed, {m['refused']} refused by
the bundle's input checks (listed below). Each row is answered as the service answers it, with the bundle's decision
rule ({html.escape(how)}). Balanced accuracy is the headline figure: accuracy alone rewards predicting the majority
outcome. Beside each figure, the bundle's own cross-validated figure at build: a gap is what moving to these cases
costs.</p>
{"".join(f'<p class="bad">{html.escape(w)}</p>' for w in m["warnings"])}
<h2>Summary</h2><table id="summary"><tr><th>figure</th><th>these cases</th><th>at build (cross-validated)</th></tr>{summary}</table>
<h2>Outcome shares</h2><p class="note">Another mix of outcomes than at build shifts calibration and the predictive
values, even where the model ranks cases as well.</p>
<table id="prevalence"><tr><th>outcome</th><th>these cases</th><th>at build</th></tr>{prevalence}</table>
<h2>Per outcome</h2>{_per_class_table(m, ev.bundle.labels.class_ids)}
{_triage_section(m)}
<h2>Calibration</h2>{_img_tag(plots.reliability_png(m['reliability_before'], m['reliability'], 'these cases'), 'reliability')}
<h2>Refused rows</h2>{'<table id="refused"><tr><th>row</th><th>why</th></tr>' + refused + '</table>' if refused else '<p>None.</p>'}
"""
    path = out / "report.html"
    path.write_text(_page(title, body, "Not a diagnosis. Figures describe this model on these cases only."),
                    encoding="utf-8")
    return path


def _page(title: str, body: str, disclaimer: str | None = None) -> str:
    """A self-contained HTML page: the title as heading, the body, the disclaimer (plain text) last."""
    end = f'\n<p class="disclaimer">{html.escape(disclaimer)}</p>' if disclaimer else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>\n'
            f"<style>{CSS}</style></head><body>\n<h1>{html.escape(title)}</h1>\n{body}{end}\n</body></html>")


def write_comparison(a: Evaluation, b: Evaluation, out: str | Path) -> Path:
    """Two bundles side by side on the same data and split."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keys = ["balanced_accuracy", "accuracy", "macro_auc", "macro_f1", "ece", "coverage", "min_class_coverage",
            "mean_set_size", "ood_pass_rate", "critical_miss_rate", "over_triage_rate", "edge_cases_handled"]
    rows = "".join(f"<tr><td>{k}</td><td>{_fmt(a.metrics.get(k))}</td><td>{_fmt(b.metrics.get(k))}</td></tr>"
                   for k in keys)
    recall = "".join(
        f"<tr><td>{c}</td><td>{_fmt(a.metrics['per_class_recall'][c])}</td><td>{_fmt(b.metrics['per_class_recall'][c])}</td></tr>"
        for c in a.bundle.spec.class_ids
    )
    na, nb = f"{a.bundle.name} {a.bundle.version}", f"{b.bundle.name} {b.bundle.version}"
    title = f"carelens comparison on {a.dataset.name} ({a.split})"
    body = f"""<h2>Summary</h2><table id="summary"><tr><th>figure</th><th>{html.escape(na)}</th><th>{html.escape(nb)}</th></tr>{rows}</table>
<h2>Recall per class</h2><table id="per-class"><tr><th>class</th><th>{html.escape(na)}</th><th>{html.escape(nb)}</th></tr>{recall}</table>
<h2>Confusion matrices</h2><div class="grid">
<figure>{_img_tag(plots.confusion_png(a.metrics['confusion_matrix'], a.bundle.spec.class_ids), na)}<figcaption>{html.escape(na)}</figcaption></figure>
<figure>{_img_tag(plots.confusion_png(b.metrics['confusion_matrix'], b.bundle.spec.class_ids), nb)}<figcaption>{html.escape(nb)}</figcaption></figure>
</div>"""
    (out / "metrics.json").write_text(json.dumps({"a": a.metrics, "b": b.metrics}, indent=1))
    path = out / "report.html"
    path.write_text(_page(title, body), encoding="utf-8")
    return path


def write_ecg_report(a: EcgAssessment, strips: list[tuple[str, bytes]], out: str | Path) -> Path:
    """One ECG screen as a self-contained page: the triage, each finding with its rule and source, the rate and
    rhythm figures, the beat classes (with a signal bundle) and the strips with the detected beats."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    title = f"carelens ECG screen: {a.record}, lead {a.lead}"
    findings = "".join(f"<tr><td>{html.escape(f.name)}</td><td>{_fmt(f.value)}</td><td>{html.escape(f.threshold)}</td>"
                       f"<td>{html.escape(f.triage)}</td><td>{html.escape(f.source)}</td></tr>" for f in a.findings)
    rr = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in
                 [("heart rate (bpm)", a.heart_rate_bpm), ("beats", a.beats), *a.rr.items()])
    beats = ""
    if a.beats_summary is not None:
        bs = a.beats_summary
        beats = ("<h2>Beat classes</h2><table><tr><th>class</th><th>beats</th><th>share</th><th>per hour</th>"
                 "<th>longest run above 100/min</th></tr>"
                 + "".join(f"<tr><td>{html.escape(c)}</td><td>{n}</td><td>{bs.share[c]:.1%}</td><td>{bs.per_hour[c]:g}</td>"
                           f"<td>{_run(bs.fast_run.get(c, 0), bs.fast_run_s.get(c, 0.0))}</td></tr>"
                           for c, n in bs.counts.items())
                 + f"</table><p class='note'>{html.escape(bs.model)}; unsure {bs.uncertain_share:.1%}, unlike the "
                   f"training beats {bs.out_of_distribution_share:.1%}</p>")
    elif a.beats_note is not None:
        beats = f"<h2>Beat classes</h2><p class='note'>{html.escape(a.beats_note)}</p>"
    figures = "".join(f"<figure>{_img_tag(png, t)}<figcaption>{html.escape(t)}</figcaption></figure>" for t, png in strips)
    agreement = (" &middot; lead read: the one where two R-peak detectors agree most ("
                 + html.escape(", ".join(f"{k} {v:.3f}" for k, v in a.lead_agreement.items())) + ")"
                 if len(a.lead_agreement) > 1 else "")
    body = f"""<p class="note">{a.seconds:g} s at {a.fs:g} Hz &middot; detector {html.escape(a.detector)} &middot; rules {html.escape(a.rules)}
&middot; signal quality: {html.escape(', '.join(a.quality_flags) or 'ok')}{agreement}</p>
<h2>{html.escape(a.triage.level.replace('_', ' ').upper())}: {html.escape(a.triage.reason)}</h2>
<p>{html.escape(a.advice)}</p>
<h2>Findings</h2>{'<table><tr><th>finding</th><th>value</th><th>rule</th><th>triage</th><th>source</th></tr>' + findings + '</table>'
                  if findings else '<p>None: rate and rhythm within the screening limits.</p>'}
<h2>Rate and rhythm</h2><table>{rr}</table>{beats}
<h2>Strips</h2><div class="grid">{figures}</div>"""
    out.write_text(_page(title, body, a.disclaimer), encoding="utf-8")
    return out
