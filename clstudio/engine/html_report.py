"""``clstudio report``: one self-contained HTML file a person can send: the dataset, the settings, R as a
heatmap, the validation curves, per-class tables and confusion matrices with the misclassified images
inline, SparCL's sparsity and FLOPs, the zero-forgetting proof, the flips and the environment. Everything
is inline (tables, SVG, base64 JPEG thumbnails): no script, no network, no file next to it."""

from __future__ import annotations

import base64
import html
import io
import platform
import sys
import time
from pathlib import Path
from typing import Any

from clstudio import __version__
from clstudio.engine.data.decode import decode_rgb
from clstudio.engine.formatting import format_share
from clstudio.engine.storage import atomic_write_bytes
from clstudio.engine.views import ProjectView

THUMBS_PER_TASK = 12  # misclassified images shown per task: enough to see a pattern, small enough to mail
THUMB_PX = 72

CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#1d232b}
h1{font-size:24px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccd}h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccd;padding:3px 8px;text-align:right}
th{background:#eef2f7}td.l,th.l{text-align:left}.heat td{width:64px;text-align:center}
.thumbs{display:flex;flex-wrap:wrap;gap:8px}.thumbs figure{margin:0;width:96px;font-size:11px}
.warn{color:#a33}.ok{color:#286}.small{color:#667;font-size:12px}"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _heat_colour(v: float) -> str:
    """White (0) → blue (1), readable text either way."""
    return f"hsl(212,70%,{round(97 - 55 * max(0.0, min(1.0, v)))}%)"


def _text_colour(v: float) -> str:
    return "#fff" if v > 0.6 else "#111"


def _matrix(names: list[str], R: list[list[float | None]]) -> str:
    head = "".join(f"<th>{_e(n)}</th>" for n in names)
    rows = []
    for name, row in zip(names, R, strict=True):
        cells = "".join(
            "<td></td>"
            if v is None
            else f'<td style="background:{_heat_colour(v)};color:{_text_colour(v)}">{v:.1%}</td>'
            for v in row
        )
        rows.append(f'<tr><th class="l">after {_e(name)}</th>{cells}</tr>')
    return f'<table class="heat"><tr><th></th>{head}</tr>{"".join(rows)}</table>'


def _curves(history: list[dict[str, Any]]) -> str:
    """Validation accuracy per epoch of each task, as one inline SVG."""
    series: dict[str, list[float]] = {}
    for ev in history:
        if ev.get("event") == "EpochEnded" and ev.get("val_acc") is not None:
            series.setdefault(str(ev["task"]), []).append(float(ev["val_acc"]))
    if not series:
        return "<p>No epochs recorded.</p>"
    w, h, pad, legend_w = 700, 220, 30, 170  # the legend sits right of the plot, never on a curve
    longest = max(len(v) for v in series.values())
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]
    lines, legend = [], []
    for k, (task, vals) in enumerate(series.items()):
        c = palette[k % len(palette)]
        pts = " ".join(
            f"{pad + (w - legend_w - 2 * pad) * i / max(longest - 1, 1):.1f},{h - pad - (h - 2 * pad) * v:.1f}"
            for i, v in enumerate(vals)
        )
        lines.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{pts}"/>')
        legend.append(f'<text x="{w - legend_w + 10}" y="{20 + 16 * k}" fill="{c}">{_e(task)}</text>')
    axes = (
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - legend_w - pad}" y2="{h - pad}" stroke="#889"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="#889"/>'
        f'<text x="2" y="{pad + 4}" font-size="11">100%</text><text x="8" y="{h - pad}" font-size="11">0%</text>'
        f'<text x="{(w - legend_w) / 2 - 40}" y="{h - 6}" font-size="11">epoch (1 … {longest})</text>'
    )
    label = 'role="img" aria-label="validation accuracy per epoch"'
    return f'<svg width="{w}" height="{h}" {label}>{axes}{"".join(lines)}{"".join(legend)}</svg>'


def _thumb(path: str) -> str | None:
    from PIL import Image

    try:
        arr = decode_rgb(path, THUMB_PX)
    except Exception:  # noqa: BLE001 - an unreadable image is left out of the report, not fatal
        return None
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _task_section(view: ProjectView, name: str) -> str:
    res = view.per_class(name)
    if res is None:
        return f"<h3>{_e(name)}</h3><p>No per-image record (trained before CL Studio kept one).</p>"
    classes = res["classes"]
    conf_head = "".join(f"<th>{_e(c)}</th>" for c in classes)
    conf_rows = []
    for c, row in zip(classes, res["confusion"], strict=True):
        total = max(sum(row), 1)
        cells = "".join(
            f'<td style="background:{_heat_colour(v / total)};color:{_text_colour(v / total)}">{v}</td>' for v in row
        )
        conf_rows.append(f'<tr><th class="l">{_e(c)}</th>{cells}</tr>')
    scores = "".join(
        f'<tr><td class="l">{_e(r["class"])}</td>'
        + "".join(f"<td>{format_share(r[k])}</td>" for k in ("precision", "recall", "f1"))
        + f"<td>{r['support']}</td></tr>"
        for r in res["per_class"]
    )
    answers = view.answers(name)
    assert answers is not None
    wrong = [i for i, (y, p) in enumerate(zip(answers.labels, answers.pred, strict=True)) if p >= 0 and p != y]
    figs = []
    for i in wrong[:THUMBS_PER_TASK]:
        src = _thumb(answers.files[i])
        if src is None:
            continue
        figs.append(
            f'<figure><img src="{src}" width="{THUMB_PX}" height="{THUMB_PX}" alt=""><figcaption>'
            f"{_e(Path(answers.files[i]).name)}<br>{_e(classes[answers.labels[i]])} → "
            f"{_e(classes[answers.pred[i]])} {answers.p_pred[i]:.0%}</figcaption></figure>"
        )
    shown = f"{len(figs)} of {len(wrong)}" if len(wrong) > len(figs) else str(len(figs))
    return (
        f"<h3>{_e(name)} <span class='small'>(after {_e(res['after'])}, {res['images']} images)</span></h3>"
        f'<table><tr><th class="l">true ↓ / predicted →</th>{conf_head}</tr>{"".join(conf_rows)}</table>'
        f'<table><tr><th class="l">class</th><th>precision</th><th>recall</th><th>F1</th><th>images</th></tr>'
        f"{scores}</table><p>Misclassified ({shown} shown): true → predicted, probability</p>"
        f'<div class="thumbs">{"".join(figs) or "<p>none</p>"}</div>'
    )


def build(view: ProjectView) -> str:
    doc, names = view.doc, view.trained_names()
    parts = [f"<h1>CL Studio report: {_e(view.store.folder.name)}</h1>"]
    parts.append(
        f"<p>Strategy <b>{_e(view.strategy_name)}</b> on backbone <b>{_e(doc['backbone']['name'])}</b> "
        f"({_e(doc['backbone']['weights'])} weights), {doc['preprocessing']['image_size']} px; "
        f"{len(names)} of {len(view.tasks)} tasks trained.</p>"
    )
    rows = "".join(
        f'<tr><td class="l">{_e(t["name"])}</td><td>{len(t["classes"])}</td><td>{t["train_images"]}</td>'
        f'<td>{t["val_images"]}</td><td>{t["eval_images"]}</td><td class="l">{_e(b["eval_on"])}</td>'
        f'<td class="l warn">{_e("; ".join(b["warnings"]))}</td></tr>'
        for t, b in zip([view.task(n) for n in names], view.evaluation_basis(), strict=True)
    )
    parts.append(
        "<h2>Data</h2><table><tr><th class='l'>task</th><th>classes</th><th>train</th><th>pick epoch</th>"
        f"<th>measure</th><th class='l'>measured on</th><th class='l'>warnings</th></tr>{rows}</table>"
    )
    cfg = "".join(f'<tr><td class="l">{_e(k)}</td><td class="l">{_e(v)}</td></tr>' for k, v in view.config.items())
    parts.append(f"<h2>Settings</h2><table>{cfg}</table>")
    if names:
        summary = " · ".join(
            f"{k} {format_share(v) if k != 'BWT' else f'{v:+.2%}'}" for k, v in view.metrics().items() if v is not None
        )
        parts.append(
            f"<h2>Accuracy matrix R (Task-IL)</h2><p>{_e(summary)}</p>{_matrix(names, view.accuracy_matrix())}"
        )
        cil = view.accuracy_matrix_class_il()
        if cil is not None:
            parts.append(f"<h3>Class-IL</h3>{_matrix(names, cil)}")
    parts.append(f"<h2>Validation accuracy per epoch</h2>{_curves(view.history())}")
    parts.append("<h2>Per class</h2>" + "".join(_task_section(view, n) for n in names))
    flips = view.flips()
    if flips:
        frows = "".join(
            f'<tr><td class="l">{_e(f["after"])}</td><td class="l">{_e(f["task"])}</td>'
            f"<td>{len(f['right_to_wrong'])}</td><td>{len(f['wrong_to_right'])}</td></tr>"
            for f in flips
        )
        parts.append(
            "<h2>Forgetting: answers that changed</h2><table><tr><th class='l'>after</th><th class='l'>task</th>"
            f"<th>right → wrong</th><th>wrong → right</th></tr>{frows}</table>"
        )
    proof = view.proof_status()
    if proof:
        prows = "".join(
            f'<tr><td class="l">{_e(n)}</td><td class="l {"ok" if p["unchanged"] is not False else "warn"}">'
            f'{_e(p["verdict"])}</td><td class="l small">{_e(p["weights_sha256"][:16])}…</td>'
            f'<td class="l small">{_e(p["answers_sha256"][:16])}…</td></tr>'
            for n, p in proof.items()
        )
        parts.append(
            "<h2>Zero-forgetting proof</h2><table><tr><th class='l'>task</th><th class='l'>verdict</th>"
            f"<th class='l'>weights sha256</th><th class='l'>answers sha256</th></tr>{prows}</table>"
        )
    if view.class_incremental and names:
        sp = view.sparsity_report()
        srows = "".join(
            f'<tr><td class="l">{_e(layer)}</td>'
            + "".join(
                f'<td style="background:{_heat_colour(t["sparsity"][k])};color:{_text_colour(t["sparsity"][k])}">'
                f"{t['sparsity'][k]:.0%}</td>"
                for t in sp["tasks"]
            )
            + "</tr>"
            for k, layer in enumerate(sp["layers"])
        )
        ratio = sp["flops_dense"] / sp["flops_used"] if sp["flops_used"] else None
        parts.append(
            "<h2>Sparsity per layer after each task</h2><table class='heat'><tr><th></th>"
            + "".join(f"<th>{_e(t['name'])}</th>" for t in sp["tasks"])
            + f"</tr>{srows}</table><p>Training FLOPs: {sp['flops_used']:.3g} used vs {sp['flops_dense']:.3g} "
            f"dense{f' ({ratio:.1f}× fewer)' if ratio else ''}.</p>"
        )
    devices = sorted({str(view.task(n).get("device", "?")) for n in names})
    import torch

    parts.append(
        f"<h2>Environment</h2><p class='small'>CL Studio {_e(__version__)} · Python {_e(sys.version.split()[0])} · "
        f"torch {_e(torch.__version__)} · {_e(platform.platform())} · trained on {_e(', '.join(devices) or '—')} · "
        f"report written {_e(time.strftime('%Y-%m-%d %H:%M'))}</p>"
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>CL Studio report: '
        f"{_e(view.store.folder.name)}</title><style>{CSS}</style></head><body>{''.join(parts)}</body></html>"
    )


def write(view: ProjectView, out: str | Path) -> Path:
    path = Path(out).expanduser()
    atomic_write_bytes(path, build(view).encode("utf-8"))
    return path
