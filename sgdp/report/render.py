"""The report as one self-contained HTML file: tables written here, charts drawn in the browser by a
small embedded script (``report.js``) from the aggregates embedded as JSON. Nothing is fetched: a
Content-Security-Policy forbids any network access, so the file opens the same offline."""

from __future__ import annotations

import datetime as _dt
import html
import json
from importlib import resources
from typing import Any

VERDICT_COLORS = {"allow": "#2e7d32", "deny": "#c62828", "unmodelled": "#9e9e9e", "malformed": "#ef6c00"}
REASON_COLORS = {"rule": "#1565c0", "default": "#c62828", "established": "#66bb6a", "related": "#26a69a",
                 "local": "#8d6e63", "lb_bypass": "#7e57c2", "no_route": "#ff8f00", "acl": "#ad1457",
                 "unmodelled": "#9e9e9e", "malformed": "#ef6c00"}
PALETTE = ["#c62828", "#2e7d32", "#1565c0", "#ff8f00", "#7e57c2", "#26a69a", "#ad1457", "#8d6e63", "#9e9e9e",
           "#ef6c00", "#00838f", "#5d4037"]
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def _asset(name: str) -> str:
    return resources.files("sgdp.report").joinpath(name).read_text(encoding="utf-8")


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def n(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else e(value)


def when(ts: float | None) -> str:
    if ts is None:
        return ""
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def page(title: str, meta: list[str], nav: list[tuple[str, str]], body: list[str], charts: list[dict]) -> str:
    payload = json.dumps({"charts": charts}, separators=(",", ":")).replace("</", "<\\/")
    links = "".join(f'<a href="#{e(k)}">{e(v)}</a>' for k, v in nav)
    metas = "".join(f'<p class="meta">{m}</p>' for m in meta)
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title><style>{_asset('report.css')}</style></head>\n<body>",
        f"<header><h1>{e(title)}</h1>{metas}<nav>{links}</nav></header>\n<main>",
        "\n".join(body),
        f'</main>\n<script type="application/json" id="sgdp-data">{payload}</script>\n',
        f"<script>{_asset('report.js')}</script>\n</body></html>\n",
    ])


def table(head: list[tuple[str, str]], rows: list[list[str]], row_class: list[str] | None = None) -> str:
    """``head``: (title, css class); cells are already HTML."""
    ths = "".join(f'<th class="{c}">{e(t)}</th>' for t, c in head)
    out = [f"<table><thead><tr>{ths}</tr></thead><tbody>"]
    for k, row in enumerate(rows):
        cls = f' class="{row_class[k]}"' if row_class and row_class[k] else ""
        out.append(f"<tr{cls}>" + "".join(f'<td class="{head[j][1]}">{cell}</td>' for j, cell in enumerate(row)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def cards(items: list[tuple[str, Any, str]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card {c}"><b>{n(v)}</b><span>{e(label)}</span></div>' for label, v, c in items) + "</div>"


def share_bar(parts: list[tuple[int, str]], total: int) -> str:
    if not total:
        return ""
    return '<span class="bar">' + "".join(
        f'<i style="width:{100.0 * v / total:.2f}%;background:{color}"></i>' for v, color in parts if v) + "</span>"


def stack_chart(cid: str, title: str, series: dict[str, Any], labels: list[str], colors: list[str]) -> dict[str, Any]:
    return {"id": cid, "type": "stack", "title": title, "t0": series["t0"], "width": series["width"],
            "counts": series["counts"], "labels": labels, "colors": colors}


def stack_marks(chart: dict[str, Any]) -> int:
    """The number of bars segments a stack chart draws (one per non-zero count): what the
    browser test counts."""
    return sum(1 for row in chart["counts"] for v in row if v)


def _by(row: dict[str, Any]) -> str:
    return "/".join(x for x in (row.get("security_group"), row.get("rule")) if x)


def verdict_cell(row: dict[str, Any]) -> str:
    v = row.get("verdict") or ""
    by = _by(row)
    badge = f'<span class="badge b-{e(v)}">{e(v)}</span>' if v in ("allow", "deny") else e(v)
    return f"{badge} {e(row.get('reason'))}" + (f" <b>{e(by)}</b>" if by else "")


# ------------------------------------------------------------------------------------------- replay


def replay_html(data: dict[str, Any], title: str = "sgdp replay report") -> str:
    s = data["summary"]
    src = data.get("source", {})
    verdicts, reasons = data["verdicts"], data["reasons"]
    meta = []
    if src.get("topology"):
        meta.append(f"topology {e(src['topology'])}")
    if src.get("captures"):
        meta.append("captures " + e(", ".join(src["captures"])))
    meta.append(f"{e(s.get('engine'))} engine; capture time {e(when(s.get('first_ts')))} to {e(when(s.get('last_ts')))} UTC"
                if s.get("first_ts") is not None else f"{e(s.get('engine'))} engine; no packets")
    nav = [("summary", "Summary"), ("time", "Over time"), ("talkers", "Talkers and flows"),
           ("instances", "Instances"), ("rules", "Security-group rules")]
    body: list[str] = [f'<p class="note">{e(x)}</p>' for x in data.get("notes", [])]
    charts: list[dict] = []

    body.append('<section id="summary"><h2>Summary</h2>')
    body.append(cards([("packets", s["packets"], ""), ("allowed", s["allowed"], "allow"), ("denied", s["denied"], "deny"),
                       ("unmodelled", s["unmodelled"], ""), ("malformed", s["malformed"], "")]))
    by_reason = s.get("by_reason") or {}
    total = s["packets"] or 1
    body.append(table([("reason", ""), ("packets", "n"), ("share", "n"), ("", "")],
                      [[e(r), n(c), f"{100.0 * c / total:.1f}%", share_bar([(c, REASON_COLORS.get(r, "#999"))], total)]
                       for r, c in sorted(by_reason.items(), key=lambda kv: -kv[1])]))
    if s.get("versions"):
        body.append("<h3>Topology versions</h3>")
        body.append(table([("topology", ""), ("from", ""), ("packets", "n")],
                          [[e(v.get("topology")), e("the start" if v.get("at") is None else when(v["at"]) + " UTC"),
                            n(v.get("packets"))] for v in s["versions"]]))
    if s.get("packets_per_s"):
        body.append(f'<p class="meta">replayed in {s["elapsed_s"]:.3f} s ({s["packets_per_s"]:,.0f} packets/s)</p>')
    body.append("</section>")

    body.append('<section id="time"><h2>Verdicts over capture time</h2><div id="chart-verdict"></div>')
    body.append('<h3>By reason</h3><div id="chart-reason"></div></section>')
    charts.append(stack_chart("chart-verdict", "packets per bucket by verdict", data["time_verdict"], verdicts,
                              [VERDICT_COLORS[v] for v in verdicts]))
    charts.append(stack_chart("chart-reason", "packets per bucket by reason", data["time_reason"], reasons,
                              [REASON_COLORS[r] for r in reasons]))

    body.append('<section id="talkers"><h2>Talkers and flows</h2>')
    if "talkers" in data:
        body.append(f'<p class="meta">{n(data["source_count"])} source address(es), {n(data["flow_count"])} flow(s) '
                    "(a flow is a connection; replies belong to it). Top sources by packets sent:</p>")
        body.append('<div id="chart-talkers"></div>')
        charts.append({"id": "chart-talkers", "type": "hbar", "title": "top talkers", "labels": ["allowed", "denied"],
                       "colors": [VERDICT_COLORS["allow"], VERDICT_COLORS["deny"]],
                       "rows": [{"label": t["src"], "values": [t["allowed"], t["denied"]]} for t in data["talkers"]]})
        body.append(table([("source", "mono"), ("packets", "n"), ("bytes", "n"), ("denied", "n")],
                          [[e(t["src"]), n(t["packets"]), n(t["bytes"]), n(t["denied"])] for t in data["talkers"]]))
        body.append("<h3>Top denied flows, with what denied them first</h3>")
        if data["denied_flows"]:
            body.append(table(
                [("flow", "mono"), ("packets", "n"), ("denied", "n"), ("first denied", ""), ("reason", ""),
                 ("where", ""), ("security group / rule", "")],
                [[e(f["flow"]), n(f["packets"]), n(f["denied"]), e(when(f["first_deny"]["ts"])), e(f["first_deny"]["reason"]),
                  e(" ".join(x for x in (f["first_deny"]["instance"], f["first_deny"]["direction"]) if x)),
                  f"<b>{e(_by(f['first_deny']))}</b>" if _by(f["first_deny"]) else '<span class="meta">none (no rule matched)</span>']
                 for f in data["denied_flows"]]))
        else:
            body.append('<p class="meta">No flow had a denied packet.</p>')
        body.append("<h3>Top flows by packets</h3>")
        body.append(table([("flow", "mono"), ("packets", "n"), ("bytes", "n"), ("denied", "n"), ("first", ""), ("last", "")],
                          [[e(f["flow"]), n(f["packets"]), n(f["bytes"]), n(f["denied"]), e(when(f["first_ts"])),
                            e(when(f["last_ts"]))] for f in data["flows"]]))
    else:
        body.append('<p class="meta">Not available: the captures were not read (see the note above).</p>')
    body.append("</section>")

    body.append('<section id="instances"><h2>Per instance and direction</h2>'
                '<p class="meta">Where each packet\'s verdict was decided (the empty instance: decided before any NIC, '
                "e.g. no route or unmodelled).</p>")
    rows = []
    for r in data["instances"]:
        rows.append([e(r["instance"] or "(none)"), e(r["direction"]), n(r["packets"]), *(n(r[v]) for v in verdicts),
                     share_bar([(r[v], VERDICT_COLORS[v]) for v in verdicts], r["packets"])])
    body.append(table([("instance", ""), ("direction", ""), ("packets", "n"), *((v, "n") for v in verdicts), ("", "")], rows))
    body.append("</section>")

    body.append('<section id="rules"><h2>Security-group rules</h2>'
                '<p class="meta">Every rule of every group in evaluation order (priority, deny before allow, creation '
                "order). <i>hits</i>: packets the rule matched first (from summary.json); <i>decided</i>: packets whose "
                "verdict row names the rule. <i>shadowed</i> and <i>not effective</i> are what <code>sgdp check</code> "
                "finds.</p>")
    groups = data["groups"]
    for g in groups:
        opened = " open" if len(groups) <= 8 else ""
        body.append(f'<details{opened}><summary>{e(g["name"])} <span class="meta">{len(g["rules"])} rule(s), '
                    f'{n(g["hits"])} hit(s), {g["never_hit"]} never hit, {g["flagged"]} flagged by check</span></summary>')
        rows, classes = [], []
        for r in g["rules"]:
            badges = "".join(_badge(f) for f in r["findings"])
            if not r["hits"]:
                badges = '<span class="badge b-never">never hit</span>' + badges
            action = f'<span class="badge b-{e(r["action"])}">{e(r["action"])}</span>' if r["action"] else ""
            rows.append([e(r["rule"]), e(r["direction"]), action, e(r["priority"]), e(r["protocol"]), e(r["ports"]),
                         e(r["remote"]), n(r["hits"]), n(r["allowed"]), n(r["denied"]), badges])
            classes.append("never" if not r["hits"] else "")
        body.append(table([("rule", "mono"), ("direction", ""), ("action", ""), ("priority", "n"), ("protocol", ""),
                           ("ports", ""), ("remote", ""), ("hits", "n"), ("decided allow", "n"), ("decided deny", "n"),
                           ("status", "")], rows, classes))
        body.append("</details>")
    if not groups:
        body.append('<p class="meta">No security group.</p>')
    body.append("</section>")
    return page(title, meta, nav, body, charts)


# --------------------------------------------------------------------------------------------- diff


def diff_html(data: dict[str, Any], title: str = "sgdp diff report") -> str:
    s = data["summary"]
    meta = [f"old {e(data['old'])} &rarr; new {e(data['new'])}; {e(s['engine'])} engine"]
    nav = [("summary", "Summary"), ("time", "Changes over time"), ("changed", "Changed flows")]
    body: list[str] = [f'<p class="note">{e(x)}</p>' for x in data.get("notes", [])]
    body.append('<section id="summary"><h2>Summary</h2>')
    body.append(cards([("packets", s["packets"], ""), ("flows", s["flows"], ""), ("changed flows", s["changed_flows"], "deny"),
                       ("packets with another verdict", s["changed_packets"], "deny")]))
    body.append("</section>")
    k = data["changed_series"]
    series = dict(data["time_changes"])
    series["counts"] = [row[:k] for row in series["counts"]]
    labels = data["transitions"][:k]
    colors = [_transition_color(label, i) for i, label in enumerate(labels)]
    charts = [stack_chart("chart-changes", "packets whose verdict changed, per bucket", series, labels, colors)]
    body.append('<section id="time"><h2>Packets whose verdict changed, over capture time</h2>')
    if k:
        body.append('<div id="chart-changes"></div>')
    else:
        body.append('<p class="meta">No packet gets another verdict under the new topology.</p>')
    body.append("</section>")
    body.append('<section id="changed"><h2>Changed flows</h2>'
                '<p class="meta">Each flow is a connection (replies included); old and new describe its first packet '
                "whose verdict differs.</p>")
    rows = [[e(c["flow"]), f'{n(c["changed_packets"])}/{n(c["packets"])}', e(when(c["first_ts"])),
             verdict_cell(c["old"]), verdict_cell(c["new"])] for c in data["changed"]]
    body.append(table([("flow", "mono"), ("changed", "n"), ("first packet", ""), ("old", ""), ("new", "")], rows))
    if data["more_changed"]:
        body.append(f'<p class="meta">and {n(data["more_changed"])} more changed flow(s) (sgdp diff --json lists all).</p>')
    body.append("</section>")
    return page(title, meta, nav, body, charts if k else [])


def _badge(finding: str) -> str:
    """A check finding as a badge; a long list of instances goes into its tooltip."""
    css = "b-shadowed" if finding.startswith("shadowed") else "b-ne"
    text, _, rest = finding.partition(" (")
    if finding.startswith("shadowed on ") and rest:
        return f'<span class="badge {css}" title="{e(rest[:-1])}">{e(text)}</span>'
    return f'<span class="badge {css}">{e(finding)}</span>'


def _transition_color(label: str, i: int) -> str:
    if label.endswith("→ deny"):
        return VERDICT_COLORS["deny"] if label.startswith("allow") else PALETTE[(i + 6) % len(PALETTE)]
    if label.endswith("→ allow"):
        return VERDICT_COLORS["allow"] if label.startswith("deny") else PALETTE[(i + 4) % len(PALETTE)]
    return PALETTE[(i + 2) % len(PALETTE)]
