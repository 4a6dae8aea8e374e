// sgdp report charts: SVG drawn from the JSON embedded in the page (no library, no network).
// Every chart element with a count is a <rect class="mark"> with a <title> tooltip.
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("sgdp-data").textContent);

  function el(tag, attrs, parent, text) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmt(n) { return Number(n).toLocaleString("en-US"); }
  function pad(n, w) { n = String(n); while (n.length < (w || 2)) n = "0" + n; return n; }
  function clock(t, step) {
    var d = new Date(t * 1000);
    var s = pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
    if (step < 1) s += "." + pad(d.getUTCMilliseconds(), 3);
    if (step >= 86400) s = d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate());
    return s;
  }
  function day(t) {
    var d = new Date(t * 1000);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate());
  }
  // the top of a 4-line grid whose steps are whole numbers of 1, 2 or 5 x 10^k packets
  function niceMax(v) {
    var q = Math.max(v / 4, 1), p = Math.pow(10, Math.floor(Math.log10(q))), m = [1, 2, 5, 10];
    for (var i = 0; i < m.length; i++) if (m[i] * p >= q) return 4 * m[i] * p;
    return 40 * p;
  }
  function span(s) {
    return s >= 1 ? fmt(s) + " s" : (s * 1000).toFixed(0) + " ms";
  }
  function legend(host, labels, colors, used) {
    var box = document.createElement("div");
    box.className = "legend";
    labels.forEach(function (name, k) {
      if (!used[k]) return;
      var item = document.createElement("span");
      var sw = document.createElement("i");
      sw.style.background = colors[k];
      item.appendChild(sw);
      item.appendChild(document.createTextNode(name));
      box.appendChild(item);
    });
    host.appendChild(box);
  }

  // Stacked bars over capture time: c = {t0, width, counts: [[per series] per bucket], labels, colors}
  function stack(host, c) {
    var W = 960, H = 260, L = 64, R = 12, T = 12, B = 40;
    var n = c.counts.length, used = c.labels.map(function () { return false; });
    var max = 1;
    c.counts.forEach(function (row) {
      var s = 0;
      row.forEach(function (v, k) { s += v; if (v) used[k] = true; });
      if (s > max) max = s;
    });
    max = niceMax(max);
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, class: "chart", role: "img", "aria-label": c.title });
    var ph = H - T - B, pw = W - L - R;
    for (var g = 0; g <= 4; g++) {
      var gy = T + ph - ph * g / 4;
      el("line", { x1: L, x2: W - R, y1: gy, y2: gy, class: "grid" }, svg);
      el("text", { x: L - 6, y: gy + 4, class: "tick", "text-anchor": "end" }, svg, fmt(max * g / 4));
    }
    var bw = pw / Math.max(n, 1), gap = bw > 4 ? 1 : 0;
    for (var i = 0; i < n; i++) {
      var y = T + ph, row = c.counts[i], t = c.t0 + i * c.width, total = 0;
      row.forEach(function (v) { total += v; });
      for (var k = 0; k < row.length; k++) {
        var v = row[k];
        if (!v) continue;
        var h = v / max * ph;
        y -= h;
        var r = el("rect", { x: (L + i * bw).toFixed(2), y: y.toFixed(2), width: Math.max(bw - gap, 0.5).toFixed(2),
                             height: Math.max(h, 0.5).toFixed(2), fill: c.colors[k], class: "mark" }, svg);
        el("title", {}, r, c.labels[k] + ": " + fmt(v) + " of " + fmt(total) + " packets, " + clock(t, c.width) +
           " + " + span(c.width) + " (UTC)");
      }
    }
    var ticks = Math.min(n, 6);
    for (var j = 0; j <= ticks; j++) {
      var b = Math.round(j * n / Math.max(ticks, 1));
      var x = L + b * bw;
      el("line", { x1: x, x2: x, y1: T + ph, y2: T + ph + 4, class: "axis" }, svg);
      el("text", { x: x, y: T + ph + 16, class: "tick", "text-anchor": j === 0 ? "start" : (j === ticks ? "end" : "middle") },
         svg, clock(c.t0 + b * c.width, c.width));
    }
    el("line", { x1: L, x2: W - R, y1: T + ph, y2: T + ph, class: "axis" }, svg);
    el("text", { x: L, y: H - 4, class: "tick" }, svg,
       "UTC, " + day(c.t0) + "; one bar = " + span(c.width) + "; y: packets");
    host.appendChild(svg);
    legend(host, c.labels, c.colors, used);
  }

  // Horizontal stacked bars: c = {rows: [{label, values: [per series]}], labels, colors}
  function hbar(host, c) {
    var W = 960, L = 300, R = 90, rowH = 20, T = 4;
    var H = T + c.rows.length * rowH + 6, used = c.labels.map(function () { return false; });
    var max = 1;
    c.rows.forEach(function (row) {
      var s = 0;
      row.values.forEach(function (v, k) { s += v; if (v) used[k] = true; });
      if (s > max) max = s;
    });
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, class: "chart", role: "img", "aria-label": c.title });
    c.rows.forEach(function (row, i) {
      var y = T + i * rowH, x = L, total = 0;
      row.values.forEach(function (v) { total += v; });
      el("text", { x: L - 8, y: y + 14, class: "label", "text-anchor": "end" }, svg, row.label);
      row.values.forEach(function (v, k) {
        if (!v) return;
        var w = v / max * (W - L - R);
        var r = el("rect", { x: x.toFixed(2), y: y + 3, width: Math.max(w, 0.5).toFixed(2), height: rowH - 6,
                             fill: c.colors[k], class: "mark" }, svg);
        el("title", {}, r, row.label + ": " + fmt(v) + " " + c.labels[k] + " of " + fmt(total));
        x += w;
      });
      el("text", { x: x + 6, y: y + 14, class: "tick" }, svg, fmt(total));
    });
    host.appendChild(svg);
    legend(host, c.labels, c.colors, used);
  }

  var kinds = { stack: stack, hbar: hbar };
  (data.charts || []).forEach(function (c) {
    var host = document.getElementById(c.id);
    if (host && kinds[c.type]) kinds[c.type](host, c);
  });
  document.body.setAttribute("data-rendered", String((data.charts || []).length));
})();
