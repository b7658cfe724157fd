"""Regenerate bench/README.md from bench/results/*.json: python bench/table.py"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import judge

HERE = Path(__file__).resolve().parent
SHOW = ["balanced_accuracy", "accuracy", "macro_f1", "micro_f1", "macro_auc", "severity_qwk", "severity_mae", "fnr",
        "fnr_target", "fnr_gap", "mean_kept", "mean_true", "kept_over_true", "odir_final_score", "passed", "total",
        "medmnist_acc", "ece_before", "ece", "coverage",
        "min_class_coverage", "mean_set_size", "critical_miss_rate", "over_triage_rate", "critical_miss_rate_ood_at_floor",
        "over_triage_rate_ood_at_floor", "far_sent_to_consultation_24", "near_sent_to_consultation_24", "ood_auroc_far", "ood_auroc_near",
        "ood_pass_rate", "top3_accuracy", "balanced_accuracy_gain", "latency_p50_ms", "latency_p99_ms",
        "throughput_img_s", "speedup_vs_torch", "model_vs_bare_ratio", "serving_process_peak_rss_mb", "peak_rss_mb",
        "requests_per_s", "errors", "rss_growth", "capacity_req_s", "offered_req_s", "served", "shed_503",
        "errors_5xx", "server_latency_p99_ms", "rss_growth_after_first_minute", "audit_matches_200",
        "sensitivity", "ppv", "records_hr_within_1bpm", "hr_abs_err_bpm_max", "pause_records_flagged",
        "non_pause_records_flagged", "end_to_end_balanced_accuracy", "rate_consistent_share", "sinus_read_over_100_bpm",
        "af_irregular_flagged", "af_escalated", "vt_records", "vt_records_flagged", "non_vt_records_flagged", "af_records_flagged", "non_af_records_flagged",
        "present_precision", "present_recall", "negated_precision", "negated_recall", "exact_match", "parse_p50_ms",
        "added_rss_mb", "balanced_accuracy_loss", "balanced_accuracy_loss_max", "top1_agreement_heldout",
        "top1_agreement_heldout_saturating", "joint_head_gain",
        "late_facts_gain_on_refit_head", "late_facts_gain_on_run_head", "mixed_pair_gain", "wall_s"]


def fmt(v: object) -> str:
    if isinstance(v, dict) and {"mean", "min", "max"} <= set(v):  # over seeds
        return f"{v['mean']:.3f} ({v['min']:.3f}-{v['max']:.3f})"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def main() -> None:
    rows = []
    for p in sorted((HERE / "results").glob("*.json")):
        d = json.loads(p.read_text())
        m = d["metrics"]
        if d["met"] != judge(m, d["targets"]):  # files written before a judging fix
            d["met"] = judge(m, d["targets"])
            p.write_text(json.dumps(d, indent=1))
        figs = []
        for k in SHOW:
            if k in m and m[k] is not None:
                t = d["targets"].get(k)
                mark = "" if t is None else (" ✓" if d["met"].get(k) else f" ✗ (target {t})")
                figs.append(f"{k} {fmt(m[k])}{mark}")
        recall = m.get("per_class_recall")
        if isinstance(recall, dict) and all(isinstance(r, (int, float)) for r in recall.values()):
            figs.append("recall " + ", ".join(f"{c} {r:.2f}" for c, r in recall.items()))
        cpu = d.get("machine", {}).get("gpu") or d.get("machine", {}).get("cpu", "?")  # where the work was done
        rows.append(f"| `{d['case']}` | {'; '.join(figs)} | `{d['command']}` | {d['date'][:16]} | {cpu} |")
    text = ("# Benchmarks\n\nMeasured on the 2-core development machine (no GPU), except where the machine column "
            "names a GPU (a lent GPU machine; carelens stays CPU-first). Each row is one file in "
            "`results/`; ✓/✗ compare with the issue's target. Timings taken while other benchmarks or tests shared "
            "the two cores are noted in each file's `notes`; ratios are measured within one run. Machines of this kind "
            "differ between sessions (AMD EPYC, Intel Xeon) and so do float results: the same command and seed gave "
            "PneumoniaMNIST accuracy 0.939 on AMD EPYC and 0.905 on Intel Xeon, so compare figures taken on one CPU."
            "\n\n| case | figures (test split unless noted) | command | date | machine |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    (HERE / "README.md").write_text(text)


if __name__ == "__main__":
    main()
