#include "gauge_html.hpp"

#include <fmt/core.h>

#include <cmath>
#include <string_view>

#include "gauge_model.hpp"
#include "vkquant/json_strict.hpp"

namespace vkq::cli {

nlohmann::json read_fidelity(const std::filesystem::path& path) {
  nlohmann::json j = read_json_file(path, "--fidelity JSON");
  if (!j.is_object()) throw FormatError(path, "not the JSON of `vkquant ppl --compare --json` (not an object)");
  if (!j.contains("configs")) {
    // A single `ppl --json` run: one point.
    if (!j.contains("perplexity")) throw FormatError(path, "no \"configs\" (the JSON of `vkquant ppl --compare --json`)");
    nlohmann::json one = j;
    if (!one.contains("config")) one["config"] = "ppl";
    j["configs"] = nlohmann::json::array({one});
  }
  const auto& configs = j["configs"];
  if (!configs.is_array() || configs.empty()) throw FormatError(path, "\"configs\": not a non-empty array");
  for (std::size_t i = 0; i < configs.size(); ++i) {
    const auto& c = configs[i];
    const std::string at = "\"configs\"[" + std::to_string(i) + "]";
    if (!c.is_object() || !c.contains("config") || !c["config"].is_string())
      throw FormatError(path, at + ": no \"config\" name");
    for (const char* key : {"perplexity", "key_bits_per_coordinate"}) {
      if (!c.contains(key) || !c[key].is_number())
        throw FormatError(path, at + " (" + c["config"].get<std::string>() + "): no number \"" + key + "\"");
      const double v = c[key].get<double>();
      if (!std::isfinite(v) || v <= 0)
        throw FormatError(path, at + " (" + c["config"].get<std::string>() + "): \"" + key + "\" is not a positive finite number");
    }
  }
  return j;
}

namespace {

std::string esc(std::string_view s) {
  std::string o;
  o.reserve(s.size());
  for (char ch : s) {
    switch (ch) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += ch;
    }
  }
  return o;
}

// JSON inside <script type="application/json">: '<' only occurs in strings,
// where \u003c is the same character, so no "</script>" can end the element.
std::string script_json(const std::string& dumped) {
  std::string o;
  o.reserve(dumped.size());
  for (char ch : dumped) {
    if (ch == '<')
      o += "\\u003c";
    else
      o += ch;
  }
  return o;
}

double num(const nlohmann::ordered_json& j, const char* a, const char* b = nullptr) {
  return (b ? j.at(a).at(b) : j.at(a)).get<double>();
}

std::string f4(double v) { return fmt::format("{:.4f}", v); }

std::string verdict_cell(const std::string& v) {
  const char* cls = v == "1-bit ok" ? "ok" : v == "needs residual" ? "resid" : "fp16";
  return fmt::format("<td class=\"v {}\">{}</td>", cls, esc(v));
}

constexpr std::string_view kStyle = R"(
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1200px;color:#1d2430;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d6dbe3;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}p.note{color:#4a5568;margin:4px 0}
table{border-collapse:collapse;margin:6px 0 14px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d6dbe3;padding:2px 7px;text-align:right}th{background:#f2f4f8}td.l,th.l{text-align:left}
td.v{text-align:left;font-weight:600}td.ok{color:#17702e}td.resid{color:#9a6200}td.fp16{color:#a61b1b}
svg.plot{border:1px solid #d6dbe3;background:#fff;margin:6px 0}svg.plot text{font:11px system-ui,sans-serif;fill:#1d2430}
.missing{padding:10px;border:1px dashed #c53030;color:#a61b1b;max-width:760px}
#js-error{color:#a61b1b;font-weight:600}
code{background:#f2f4f8;padding:0 3px}
)";

// Draws every plot from the embedded JSON; marks the page when done, or with
// the error when anything throws (window.onerror is set first, in <head>).
constexpr std::string_view kScript = R"JS(
(function () {
  var NS = 'http://www.w3.org/2000/svg';
  var data = JSON.parse(document.getElementById('gauge-data').textContent);
  var fnode = document.getElementById('fidelity-data');
  var fidelity = fnode ? JSON.parse(fnode.textContent) : null;
  var COLORS = { raw: '#8c96a8', centered: '#3a7bd5', srht: '#e08a00', learned: '#17702e', 'null control': '#c53030',
                 'shared learned': '#17702e', 'shared null': '#c53030', 'per-expert learned': '#6b46c1', 'per-expert null': '#d66b9a' };
  var plots = 0;
  function el(name, attrs, parent, text) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function logTick(v) { return v >= 0.01 && v < 1e4 ? String(Number(v.toPrecision(2))) : v.toExponential(1); }
  // series: [{name, points: [{x (index or value), y, label}], line (joined in order), hollow, color}];
  // opts: {xs (category labels) | xlog, ylog (log10 y when every y > 0), ylabel, xlabel, hlines, ymin, ymax}
  function plot(svg, series, opts) {
    var W = +svg.getAttribute('width'), H = +svg.getAttribute('height');
    var L = 58, R = 160, T = 16, B = opts.xs ? 70 : 46;
    var all = [];
    series.forEach(function (s) { s.points.forEach(function (p) { all.push(p); }); });
    if (all.length === 0) throw new Error('plot ' + svg.id + ': no points');
    var ylog = !!opts.ylog && all.every(function (p) { return p.y > 0; });
    var yt = function (y) { return ylog ? Math.log10(y) : y; };
    var ys = all.map(function (p) { return yt(p.y); }).concat((opts.hlines || []).map(function (h) { return yt(h.y); }));
    var ymin = opts.ymin !== undefined ? yt(opts.ymin) : Math.min.apply(null, ys);
    var ymax = opts.ymax !== undefined ? yt(opts.ymax) : Math.max.apply(null, ys);
    if (opts.ypad) { var pad = (ymax - ymin) * 0.08 || 0.05; ymin -= pad; ymax += pad; }
    var xv = function (p) { return opts.xlog ? Math.log2(p.x) : p.x; };
    var xmin, xmax;
    if (opts.xs) { xmin = -0.5; xmax = opts.xs.length - 0.5; } else {
      var xsv = all.map(xv); xmin = Math.min.apply(null, xsv); xmax = Math.max.apply(null, xsv);
      var xp = (xmax - xmin) * 0.08 || 0.5; xmin -= xp; xmax += xp;
    }
    var sx = function (x) { return L + (x - xmin) / (xmax - xmin) * (W - L - R); };
    var sy = function (y) { return T + (ymax - y) / (ymax - ymin) * (H - T - B); };
    el('rect', { x: L, y: T, width: W - L - R, height: H - T - B, fill: 'none', stroke: '#9aa3b2' }, svg);
    for (var i = 0; i <= 5; ++i) {
      var yv = ymin + (ymax - ymin) * i / 5;
      el('line', { x1: L - 4, x2: W - R, y1: sy(yv), y2: sy(yv), stroke: '#e6e9ef' }, svg);
      el('text', { x: L - 6, y: sy(yv) + 4, 'text-anchor': 'end' }, svg,
         ylog ? logTick(Math.pow(10, yv)) : yv.toFixed(yv >= 10 ? 1 : 3));
    }
    if (opts.xs) {
      opts.xs.forEach(function (lab, i) {
        el('text', { x: sx(i), y: H - B + 12, 'text-anchor': 'end', transform: 'rotate(-45 ' + sx(i) + ' ' + (H - B + 12) + ')' }, svg, lab);
      });
    } else {
      var lo = Math.ceil(xmin), hi = Math.floor(xmax);
      for (var t = lo; t <= hi; ++t) {
        el('line', { x1: sx(t), x2: sx(t), y1: T, y2: H - B + 4, stroke: '#e6e9ef' }, svg);
        el('text', { x: sx(t), y: H - B + 16, 'text-anchor': 'middle' }, svg, opts.xlog ? String(Math.pow(2, t)) : String(t));
      }
    }
    if (opts.xlabel) el('text', { x: (L + W - R) / 2, y: H - 6, 'text-anchor': 'middle' }, svg, opts.xlabel);
    if (opts.ylabel) el('text', { x: 14, y: (T + H - B) / 2, 'text-anchor': 'middle', transform: 'rotate(-90 14 ' + (T + H - B) / 2 + ')' }, svg,
                        opts.ylabel + (ylog ? ' (log scale)' : ''));
    (opts.hlines || []).forEach(function (h) {
      el('line', { x1: L, x2: W - R, y1: sy(yt(h.y)), y2: sy(yt(h.y)), stroke: h.color || '#555', 'stroke-dasharray': '5 4' }, svg);
      el('text', { x: L + 4, y: sy(yt(h.y)) - 3, fill: h.color || '#555' }, svg, h.label);
    });
    var n = 0;
    series.forEach(function (s, si) {
      var color = COLORS[s.name] || s.color || '#333';
      var dot = function (a) {
        if (s.hollow) { a.fill = '#fff'; a.stroke = color; a['stroke-width'] = 1.5; } else a.fill = color;
        return a;
      };
      if (s.line && s.points.length > 1) {
        el('polyline', { points: s.points.map(function (p) { return sx(xv(p)) + ',' + sy(yt(p.y)); }).join(' '), fill: 'none',
                         stroke: color, 'stroke-width': 1.2, opacity: 0.6 }, svg);
      }
      s.points.forEach(function (p) {
        var c = el('circle', dot({ cx: sx(xv(p)), cy: sy(yt(p.y)), r: 3.5 }), svg);
        el('title', {}, c, (p.label ? p.label + ': ' : '') + s.name + ' ' + (ylog ? p.y.toPrecision(4) : p.y.toFixed(4)));
        if (p.tag) el('text', { x: sx(xv(p)) + 6, y: sy(yt(p.y)) - 5 }, svg, p.tag);
        ++n;
      });
      if (!opts.nolegend) {
        el('circle', dot({ cx: W - R + 12, cy: T + 10 + 16 * si, r: 4 }), svg);
        el('text', { x: W - R + 22, y: T + 14 + 16 * si }, svg, s.name);
      }
    });
    svg.dataset.points = n;
    ++plots;
  }
  var th = data.thresholds;
  var hl = [{ y: th.ok, label: '1-bit ok ' + th.ok, color: '#17702e' }, { y: th.residual, label: 'residual ' + th.residual, color: '#9a6200' },
            { y: th.floor, label: 'floor ' + th.floor, color: '#a61b1b' }];
  if (data.keys) {
    ['post', 'pre'].forEach(function (rope) {
      var svg = document.getElementById('plot-keys-' + rope);
      var xs = [], names = ['raw', 'centered', 'srht', 'learned', 'null control'];
      var series = names.map(function (n) { return { name: n, points: [], line: true }; });
      data.keys[rope].forEach(function (L) {
        L.heads.forEach(function (h) {
          var i = xs.length, lab = 'layer ' + L.layer + ' head ' + h.head;
          xs.push('L' + L.layer + ' h' + h.head);
          [h.raw.cos1b, h.centered.cos1b, h.srht.cos1b, h.learned.cos1b, h.null_control.cos1b].forEach(function (y, k) {
            series[k].points.push({ x: i, y: y, label: lab });
          });
        });
      });
      plot(svg, series, { xs: xs, ylabel: 'cos1b (held-out for learned / null)', hlines: hl, ymax: 1, ypad: false,
                          ymin: Math.min(0.5, Math.floor(Math.min.apply(null, series[0].points.map(function (p) { return p.y; })) * 20) / 20) });
    });
  }
  if (data.mlp) {
    var svg = document.getElementById('plot-mlp');
    var xs = [], series;
    if (data.mlp.matrices) {
      series = ['centered', 'srht', 'learned', 'null control'].map(function (n) { return { name: n, points: [] }; });
      data.mlp.matrices.forEach(function (m, i) {
        var lab = 'layer ' + m.layer + ' ' + m.matrix;
        xs.push('L' + m.layer + ' ' + m.matrix);
        [m.centered.cos1b, m.srht.cos1b, m.learned.cos1b, m.null_control.cos1b].forEach(function (y, k) { series[k].points.push({ x: i, y: y, label: lab }); });
      });
    } else {
      series = ['shared learned', 'shared null', 'per-expert learned', 'per-expert null'].map(function (n) { return { name: n, points: [] }; });
      data.mlp.expert_banks.forEach(function (b, i) {
        var lab = 'layer ' + b.layer + ' ' + b.matrix;
        xs.push('L' + b.layer + ' ' + b.matrix);
        [b.shared.learned.cos1b, b.shared.null_control.cos1b, b.per_expert_mean.learned.cos1b, b.per_expert_mean.null_control.cos1b]
          .forEach(function (y, k) { series[k].points.push({ x: i, y: y, label: lab }); });
      });
    }
    plot(svg, series, { xs: xs, ylabel: 'cos1b (held-out rows)', hlines: hl, ypad: true });
  }
  // The precision policy: its predicted loss against bits (the Pareto curve)
  // beside every head taking one option (uniform settings).
  if (data.keys && data.keys.policy) {
    var modes = data.keys.policy.modes;
    Object.keys(modes).forEach(function (mode) {
      var m = modes[mode];
      var curve = m.curve.map(function (c) { return { x: c.bits, y: c.loss, label: 'budget ' + c.budget.toFixed(3) + ', ' + c.bits.toFixed(3) + ' bits' }; });
      var uni = m.uniform.map(function (u) {
        return { x: u.head_bits, y: u.loss, label: (u.rank ? 'r' + u.rank + ' ' + (u.arel ? 'a' + u.bits : u.bits === 16 ? 'fp16' : 'int' + u.bits) : '1-bit') };
      });
      var series = [{ name: 'policy', points: curve, line: true, color: '#17702e' }, { name: 'uniform', points: uni, hollow: true, color: '#e08a00' }];
      if (m.tc_curve) {
        series.push({ name: 'transform code', line: true, color: '#6b46c1',
                      points: m.tc_curve.filter(function (c) { return c.loss > 0; }).map(function (c) {
                        return { x: c.bits, y: c.loss, label: 'transform code, budget ' + c.budget.toFixed(3) + ', ' + c.bits.toFixed(3) + ' bits' };
                      }) });
      }
      plot(document.getElementById('plot-policy-' + (mode === 'post-ropemean' ? 'ropemean' : mode)), series,
           { xlog: true, ylog: true, xlabel: 'key bits per coordinate (log scale)', ylabel: 'predicted loss, sum over heads', ypad: true });
    });
  }
  if (fidelity) {
    // Measured KL to fp16 of the keys-only 1-bit learned rows: per rope mode,
    // the precision policy's rows (kv-budget; series "policy <mode>") joined, the uniform settings as points.
    var KL_COLORS = { post: '#3a7bd5', 'post-ropemean': '#6b46c1', pre: '#17702e' };
    var TC_COLORS = { post: '#9cc0ee', 'post-ropemean': '#c0a8ee', pre: '#e08a00' };
    var klSeries = [];
    ['post', 'post-ropemean', 'pre'].forEach(function (mode) {
      var policy = [], uniform = [], tc = [];
      fidelity.configs.forEach(function (c) {
        var w = c.config.split(' ');
        if (w[0] === 'tc' && w[1] === mode && c.config.indexOf(' + ') < 0 && typeof c.kl_to_fp16 === 'number')
          tc.push({ x: c.key_bits_per_coordinate, y: c.kl_to_fp16, label: c.config });
        if (w[0] !== '1bit' || w[1] !== 'learned' || w[2] !== mode || c.config.indexOf(' + ') >= 0 || typeof c.kl_to_fp16 !== 'number') return;
        var p = { x: c.key_bits_per_coordinate, y: c.kl_to_fp16, label: c.config };
        (c.config.indexOf('kv-budget') >= 0 ? policy : uniform).push(p);
      });
      policy.sort(function (a, b) { return a.x - b.x; });
      if (policy.length) klSeries.push({ name: 'policy ' + mode, points: policy, line: true, color: KL_COLORS[mode] });
      if (uniform.length) klSeries.push({ name: 'uniform ' + mode, points: uniform, hollow: true, color: KL_COLORS[mode] });
      tc.sort(function (a, b) { return a.x - b.x; });
      if (tc.length) klSeries.push({ name: 'transform code ' + mode, points: tc, line: true, color: TC_COLORS[mode] });
    });
    var svgKl = document.getElementById('plot-fidelity-kl');
    if (klSeries.length) {
      plot(svgKl, klSeries, { xlabel: 'key bits per coordinate', ylabel: 'KL to fp16 (nats per token)', ylog: true, ypad: true });
    } else {
      var note = document.createElement('p');
      note.className = 'note';
      note.id = 'fidelity-kl-missing';
      note.textContent = 'No 1-bit learned rows with a KL to fp16 in this fidelity JSON (ppl --compare with --rotations has them).';
      svgKl.replaceWith(note);
    }
    var svg2 = document.getElementById('plot-fidelity');
    var base = null;
    var pts = fidelity.configs.map(function (c) {
      if (c.config === 'fp16') base = c.perplexity;
      return { x: c.key_bits_per_coordinate, y: c.perplexity, label: c.config, tag: c.config };
    });
    plot(svg2, [{ name: 'configs', points: pts, color: '#3a7bd5' }],
         { xlog: true, xlabel: 'key bits per coordinate (log scale)', ylabel: 'perplexity', ypad: true, nolegend: true,
           hlines: base !== null ? [{ y: base, label: 'fp16 ' + base.toFixed(3), color: '#555' }] : [] });
  }
  document.body.dataset.plots = plots;
  document.body.dataset.rendered = 'ok';
})();
)JS";

void keys_tables(std::string& h, const nlohmann::ordered_json& k, const nlohmann::ordered_json& g) {
  const int rank = k["rank"].get<int>();
  h += fmt::format(
      "<p class=\"note\">{} tokens of <code>{}</code>; keys of each (layer, KV head) centered by their mean over the tokens; "
      "learned: {}; figures of the learned rotation on the {:.0f}% of the keys held out.</p>\n",
      k["tokens"].get<std::uint64_t>(), esc(k["text"].get<std::string>()),
      k["learned_from"] == "artifact" ? "the rotations and means of <code>" + esc(k["rotations"].get<std::string>()) + "</code>"
                                      : fmt::format("{} ({} iterations, 0 = the solver's default; FastICA warm start &le; {})",
                                                    esc(k["solver"].get<std::string>()), k["iters"].get<int>(),
                                                    k["warm_start"].get<int>()),
      100 * k["heldout_fraction"].get<double>());
  h += "<h3>Verdicts</h3>\n<p class=\"note\">" + esc(g["verdict_rule"].get<std::string>()) + "</p>\n";
  h += "<table><tr><th>layer</th><th class=\"l\">post-RoPE</th><th>worst learned</th><th>worst cos1b_eff</th><th>G</th>"
       "<th class=\"l\">pre-RoPE</th><th>worst learned</th><th>worst cos1b_eff</th><th>G</th></tr>\n";
  for (std::size_t l = 0; l < k["post"].size(); ++l) {
    h += fmt::format("<tr><td>{}</td>", l);
    for (const char* rope : {"post", "pre"}) {
      const auto& L = k[rope][l];
      h += verdict_cell(L["verdict"].get<std::string>());
      h += fmt::format("<td>{}</td><td>{}</td><td>{:.3g}</td>", f4(num(L, "worst_learned")), f4(num(L, "worst_cos1b_eff_predicted")),
                       num(L, "G"));
    }
    h += "</tr>\n";
  }
  h += "</table>\n";
  for (const char* rope : {"post", "pre"}) {
    h += fmt::format("<h3>{}-RoPE keys</h3>\n<svg class=\"plot\" id=\"plot-keys-{}\" width=\"1100\" height=\"340\" "
                     "role=\"img\" aria-label=\"cos1b per layer and head, {}-RoPE\"></svg>\n",
                     rope == std::string("post") ? "Post" : "Pre", rope, rope);
    h += fmt::format(
        "<table><tr><th>layer</th><th>head</th><th>raw cos1b</th><th>centered</th><th>SRHT</th><th>learned</th><th>null "
        "control</th><th>lift</th><th>raw beta</th><th>centered beta</th><th>SRHT beta</th><th>learned beta</th><th>G term</th>"
        "<th>gamma_r</th><th>cos1b_eff (r{}) predicted</th><th>measured</th></tr>\n",
        rank);
    for (const auto& L : k[rope])
      for (const auto& hd : L["heads"])
        h += fmt::format(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:+.4f}</td><td>{}</td><td>{}</td>"
            "<td>{}</td><td>{}</td><td>{:.3g}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            L["layer"].get<int>(), hd["head"].get<int>(), f4(num(hd, "raw", "cos1b")), f4(num(hd, "centered", "cos1b")),
            f4(num(hd, "srht", "cos1b")), f4(num(hd, "learned", "cos1b")), f4(num(hd, "null_control", "cos1b")),
            num(hd, "lift_over_null"), f4(num(hd, "raw", "beta")), f4(num(hd, "centered", "beta")), f4(num(hd, "srht", "beta")),
            f4(num(hd, "learned", "beta")), num(hd, "G_term"), f4(num(hd, "gamma_r")), f4(num(hd, "cos1b_eff_predicted")),
            f4(num(hd, "cos1b_eff_measured")));
    h += "</table>\n";
  }
}

std::string figure_cells(const nlohmann::ordered_json& f) {
  return fmt::format(
      "<td>{}x{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:+.4f}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
      f["rows"].get<std::size_t>(), f["d"].get<std::size_t>(), f4(num(f, "raw", "cos1b")), f4(num(f, "centered", "cos1b")),
      f4(num(f, "srht", "cos1b")), f4(num(f, "learned", "cos1b")), f4(num(f, "null_control", "cos1b")), num(f, "lift_over_null"),
      f4(num(f, "learned", "fit_cos1b")), f4(num(f, "null_control", "fit_cos1b")), f4(num(f, "learned", "beta")),
      f4(num(f, "cos1b_eff_predicted")));
}

void mlp_tables(std::string& h, const nlohmann::ordered_json& m) {
  h += fmt::format(
      "<p class=\"note\">Vectors: {}. Learned: {} ({} iterations, 0 = the solver's default; warm start &le; {}), figures on the "
      "{:.0f}% of the rows held out{}.</p>\n",
      esc(m["vectors"].get<std::string>()), esc(m["solver"].get<std::string>()), m["iters"].get<int>(), m["warm_start"].get<int>(),
      100 * m["heldout_fraction"].get<double>(),
      m["rows_limit"].get<std::size_t>() ? fmt::format("; at most {} rows per set (seeded subsample)", m["rows_limit"].get<std::size_t>())
                                         : std::string());
  h += "<svg class=\"plot\" id=\"plot-mlp\" width=\"1100\" height=\"360\" role=\"img\" aria-label=\"MLP cos1b\"></svg>\n";
  const std::string head = fmt::format(
      "<th>rows x d</th><th>raw cos1b</th><th>centered</th><th>SRHT</th><th>learned</th><th>null control</th><th>lift</th>"
      "<th>learned (fit rows)</th><th>null (fit rows)</th><th>learned beta</th><th>cos1b_eff (r{}) predicted</th>",
      m["rank"].get<int>());
  if (m.contains("matrices")) {
    h += "<table><tr><th>layer</th><th class=\"l\">matrix</th>" + head + "<th class=\"l\">verdict</th></tr>\n";
    for (const auto& r : m["matrices"])
      h += fmt::format("<tr><td>{}</td><td class=\"l\">{}</td>{}{}</tr>\n", r["layer"].get<int>(), esc(r["matrix"].get<std::string>()),
                       figure_cells(r), verdict_cell(r["verdict"].get<std::string>()));
    h += "</table>\n";
  }
  if (m.contains("expert_banks")) {
    h += "<p class=\"note\">Expert banks: the rows of all experts under one shared rotation, against the mean of one rotation "
         "per expert. Frustration = per-expert learned &minus; shared learned (&gt; 0: the shared rotation fits worse); compare "
         "the lifts over the null controls, since fewer rows are easier to fit.</p>\n";
    h += "<table><tr><th>layer</th><th class=\"l\">bank</th><th class=\"l\">rotation</th>" + head +
         "<th class=\"l\">verdict</th><th>frustration</th></tr>\n";
    for (const auto& b : m["expert_banks"]) {
      const int l = b["layer"].get<int>();
      const std::string name = esc(b["matrix"].get<std::string>());
      h += fmt::format("<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">shared ({} experts)</td>{}{}<td rowspan=\"2\">{:+.4f}</td></tr>\n",
                       l, name, b["experts"].get<int>(), figure_cells(b["shared"]), verdict_cell(b["verdict"].get<std::string>()),
                       num(b, "frustration"));
      h += fmt::format("<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">per expert (mean of {})</td>{}{}</tr>\n", l, name,
                       b["experts_gauged"].get<int>(), figure_cells(b["per_expert_mean"]),
                       verdict_cell(b["per_expert_mean"]["verdict"].get<std::string>()));
    }
    h += "</table>\n";
  }
}

const char* objective_note(const std::string& o) {
  if (o == "query") return "key errors weighted by the calibration queries' second moment, E[(q&middot;e)&sup2;]/d";
  if (o == "key") return "unweighted key error, E&#8214;e&#8214;&sup2;";
  if (o == "null") return "the query tables dealt to the heads in a seeded random order: the control";
  return "";
}

// A stored plan as a table: a row per layer, cell(head) per KV head, and the
// layer's mean bits per key coordinate.
template <class Cell>
void plan_table(std::string& h, const std::string& id, const nlohmann::ordered_json& plan, Cell&& cell) {
  h += fmt::format("<table id=\"{}\"><tr><th>layer</th>", id);
  for (std::size_t k = 0; k < (plan.empty() ? 0 : plan[0].size()); ++k) h += fmt::format("<th class=\"l\">KV head {}</th>", k);
  h += "<th>bits</th></tr>\n";
  for (std::size_t l = 0; l < plan.size(); ++l) {
    h += fmt::format("<tr><td>{}</td>", l);
    double bits = 0;
    for (const auto& hd : plan[l]) {
      bits += num(hd, "head_bits") / double(plan[l].size());
      h += cell(hd);
    }
    h += fmt::format("<td>{:.4f}</td></tr>\n", bits);
  }
  h += "</table>\n";
}

// keys.policy (tools/gauge_model.hpp): per rope mode, the predicted loss
// against bits and the stored plan per (layer, KV head).
void policy_tables(std::string& h, const nlohmann::ordered_json& p) {
  const double budget = num(p, "budget");
  const std::string objective = p["objective"].get<std::string>();
  h += fmt::format(
      "<p class=\"note\">The artifact's precision policy (docs/design.md &sect;2.8): each (layer, KV head)'s loss for every "
      "residual option (rank; fp16, int8 or int4 coefficients) on the calibration's held-out keys; objective <b>{}</b> ({}). "
      "Where calibrate measured each head's sensitivity (the KL of the output with only that head coded, shown as "
      "&ldquo;KL alone&rdquo;), each head's losses are scaled so that its 1-bit loss is that KL. "
      "The plan is the least summed loss whose mean bits per key coordinate stay within the budget ({}). Plots: the policy's "
      "predicted loss at budgets from the 1-bit code to 4 bits (joined) against every head taking the same option (uniform, "
      "hollow), and the transform code's plan at each budget (docs/design.md &sect;2.9; its heads weighed alike).</p>\n",
      esc(objective), objective_note(objective),
      budget > 0 ? fmt::format("calibrated at {:g}", budget) : std::string("none stored: calibrated to measure only"));
  for (const auto& [mode, m] : p["modes"].items()) {
    const std::string id = mode == "post-ropemean" ? "ropemean" : mode;
    h += fmt::format("<h3>{} keys</h3>\n", esc(mode));
    if (m.contains("plan")) {
      h += fmt::format("<p class=\"note\">Stored plan: {:.4f} bits per key coordinate (budget {:g}), predicted loss {}.</p>\n",
                       num(m, "bits"), budget, m["loss"].is_null() ? std::string("?") : fmt::format("{:.4g}", num(m, "loss")));
    }
    h += fmt::format("<svg class=\"plot\" id=\"plot-policy-{}\" width=\"900\" height=\"380\" role=\"img\" "
                     "aria-label=\"predicted loss against key bits, {} keys\"></svg>\n",
                     id, esc(mode));
    if (!m.contains("plan")) {
      h += "<p class=\"note\">No stored plan (<code>vkquant calibrate --kv-budget BITS</code> stores one).</p>\n";
      continue;
    }
    plan_table(h, "policy-plan-" + id, m["plan"], [](const nlohmann::ordered_json& hd) {
      const bool measured = hd.contains("kl_alone") && !hd["kl_alone"].is_null();
      return fmt::format("<td class=\"l\" title=\"{:.4f} bits, loss {}\">{}{}</td>", num(hd, "head_bits"),
                         hd["loss"].is_null() ? std::string("?") : fmt::format("{:.4g}", num(hd, "loss")),
                         residual_setting(hd["rank"].get<std::uint32_t>(), hd["bits"].get<std::uint32_t>(), hd.value("arel", false)),
                         measured ? fmt::format(" <small>(KL alone {:.4f})</small>", num(hd, "kl_alone")) : std::string());
    });
    if (m.contains("tc_plan")) {
      // The transform code's stored plan (docs/design.md §2.9).
      h += fmt::format("<p class=\"note\">The transform code's stored plan (<code>--kcache tc</code>, docs/design.md &sect;2.9: "
                       "coefficients at 4, 3, 2 and 1 bits, written n4/n3/n2/n1; no sign code): {:.4f} bits per key coordinate.</p>\n",
                       num(m, "tc_bits"));
      plan_table(h, "tc-plan-" + id, m["tc_plan"], [](const nlohmann::ordered_json& hd) {
        return fmt::format("<td class=\"l\">{}</td>", esc(hd["setting"].get<std::string>()));
      });
    }
  }
}

}  // namespace

std::string gauge_html(const nlohmann::ordered_json& g, const std::optional<nlohmann::json>& fidelity) {
  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n";
  h += "<title>vkquant gauge: " + esc(g["model"].get<std::string>()) + "</title>\n";
  h += "<style>" + std::string(kStyle) + "</style>\n";
  // Set before any other script runs: a script error marks the page.
  h += "<script>window.onerror = function (msg, src, line) { document.documentElement.dataset.jsError = msg + ' (line ' + line + ')'; "
       "var p = document.getElementById('js-error'); if (p) p.textContent = 'script error: ' + msg; };</script>\n";
  h += "</head><body>\n<p id=\"js-error\"></p>\n";
  h += "<h1>vkquant gauge &mdash; " + esc(g["model"].get<std::string>()) + "</h1>\n";
  h += fmt::format("<p class=\"note\">{}, {} layers, {} heads / {} KV heads &times; {}, hidden {}, ffn {}{}; device {}; {:.1f} s.</p>\n",
                   esc(g["architecture"].get<std::string>()), g["layers"].get<int>(), g["heads"].get<int>(), g["kv_heads"].get<int>(),
                   g["head_dim"].get<int>(), g["dim"].get<int>(), g["ffn"].get<int>(),
                   g["experts"].get<int>() ? fmt::format(", {} experts (top {})", g["experts"].get<int>(), g["experts_used"].get<int>())
                                           : std::string(),
                   esc(g["device"].get<std::string>()), g["seconds"].get<double>());
  h += "<p class=\"note\"><b>cos1b</b> = mean over vectors of ||v||<sub>1</sub> / (&radic;d ||v||<sub>2</sub>) (the cosine between a "
       "vector and its sign code); <b>beta</b> = (E|x|)&sup2; / E[x&sup2;] over all coordinates (Gaussian 0.6366). "
       "<b>null control</b>: the learned cos1b the same solver reaches on Gaussian vectors of the same shape, mean and covariance; "
       "only the lift above it is structure. <b>G</b> = mean over heads of max(0, &kappa;/&sigma;&sup2;). "
       "<b>cos1b_eff</b>&sup2; = 1 &minus; (1 &minus; cos1b&sup2;)(1 &minus; &gamma;<sub>r</sub>).</p>\n";

  if (g.contains("keys")) {
    h += "<h2>Keys</h2>\n";
    keys_tables(h, g["keys"], g);
  }
  if (g.contains("keys") && g["keys"].contains("policy")) {
    h += "<h2>Precision policy</h2>\n";
    policy_tables(h, g["keys"]["policy"]);
  }
  if (g.contains("mlp")) {
    h += "<h2>MLP weights</h2>\n";
    mlp_tables(h, g["mlp"]);
  }

  h += "<h2>Bits per key coordinate against perplexity</h2>\n";
  if (fidelity) {
    auto field = [&](const char* k) {
      if (!fidelity->contains(k)) return std::string("?");
      const auto& v = (*fidelity)[k];
      return v.is_string() ? v.get<std::string>() : v.dump();
    };
    h += fmt::format("<p class=\"note\">From <code>vkquant ppl --compare --json</code>: model <code>{}</code>, text <code>{}</code>, {} tokens.</p>\n",
                     esc(field("model")), esc(field("text")), esc(field("tokens")));
    h += "<svg class=\"plot\" id=\"plot-fidelity\" width=\"900\" height=\"420\" role=\"img\" aria-label=\"bits per key coordinate against perplexity\"></svg>\n";
    h += "<p class=\"note\">Measured KL to fp16 keys against key bits per coordinate, keys-only 1-bit learned rows per rope mode: "
         "the precision policy's rows (<code>kv-budget</code>, joined) against the uniform settings (hollow) &mdash; the measured "
         "Pareto curves.</p>\n";
    h += "<svg class=\"plot\" id=\"plot-fidelity-kl\" width=\"960\" height=\"420\" role=\"img\" aria-label=\"key bits per coordinate against KL to fp16\"></svg>\n";
    h += "<table><tr><th class=\"l\">keys</th><th>perplexity</th><th>bits/byte</th><th>KL to fp16</th><th>top-1 agreement</th>"
         "<th>key bits/coordinate</th></tr>\n";
    auto opt = [](const nlohmann::json& c, const char* k, const char* spec) {
      return c.contains(k) && c[k].is_number() ? fmt::format(fmt::runtime(spec), c[k].get<double>()) : std::string("&ndash;");
    };
    for (const auto& c : (*fidelity)["configs"])
      h += fmt::format("<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                       esc(c["config"].get<std::string>()), opt(c, "perplexity", "{:.4f}"), opt(c, "bits_per_byte", "{:.4f}"),
                       opt(c, "kl_to_fp16", "{:.5f}"), opt(c, "top1_agreement", "{:.4f}"), opt(c, "key_bits_per_coordinate", "{:.3f}"));
    h += "</table>\n";
  } else {
    h += "<p class=\"missing\" id=\"fidelity-missing\">This plot needs perplexity data: run <code>vkquant ppl MODEL --text FILE "
         "--rotations ART --compare --json &gt; fidelity.json</code> and pass <code>--fidelity fidelity.json</code> to "
         "<code>vkquant gauge</code>.</p>\n";
  }

  h += "<script type=\"application/json\" id=\"gauge-data\">" + script_json(g.dump()) + "</script>\n";
  if (fidelity) h += "<script type=\"application/json\" id=\"fidelity-data\">" + script_json(fidelity->dump()) + "</script>\n";
  h += "<script>" + std::string(kScript) + "</script>\n</body></html>\n";
  return h;
}

}  // namespace vkq::cli
