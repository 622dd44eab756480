// The two plots of an experiment page, drawn with uPlot from the JSON the server put in #chart-data.
// The server sends them only with 2 days of data or more; days are UTC midnights, lifts in percent.
(function () {
  "use strict";
  var palette = ["#5b6472", "#2e6fd1", "#c0392b", "#1f8a4c", "#8e44ad", "#d68910", "#16a085"];
  var months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  var DAY = 86400;

  function color(i) { return palette[i % palette.length]; }

  function day(ts) {
    var d = new Date(ts * 1000);
    return months[d.getUTCMonth()] + " " + d.getUTCDate();
  }

  function percent(value) {
    if (value === null || value === undefined) { return "—"; }
    var digits = Math.abs(value) < 10 ? 1 : 0;
    return (value > 0 ? "+" : "") + value.toFixed(digits).replace(/\.0$/, "") + "%";
  }

  function count(value) {
    if (Math.abs(value) >= 10000) { return Math.round(value / 1000).toLocaleString("en") + "k"; }
    return Math.round(value).toLocaleString("en");
  }

  function width(element) { return Math.max(element.clientWidth, 200); }

  function dateAxis() {
    return {
      space: 64,
      incrs: [DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY, 56 * DAY, 91 * DAY],
      values: function (u, splits) { return splits.map(day); },
      grid: { stroke: "#eef0f3" },
      ticks: { stroke: "#e3e6ea" },
    };
  }

  function valueAxis(format) {
    return {
      size: 58, gap: 4,
      values: function (u, splits) { return splits.map(format); },
      grid: { stroke: "#eef0f3" },
      ticks: { stroke: "#e3e6ea" },
    };
  }

  function legend(target, entries) {
    target.textContent = "";
    entries.forEach(function (entry) {
      var item = document.createElement("span");
      var swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = entry.color;
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(entry.label));
      target.appendChild(item);
    });
  }

  // The y range: every line, and the bands as far as they stay readable (early bands can be enormous).
  function liftRange(data) {
    var effects = [], bounds = [];
    data.lift.forEach(function (line) {
      line.effect.forEach(function (v) { if (v !== null) { effects.push(v); } });
      line.low.concat(line.high).forEach(function (v) { if (v !== null) { bounds.push(v); } });
    });
    var reach = Math.max(10, 3 * Math.max.apply(null, effects.map(Math.abs).concat([0])));
    var low = Math.min.apply(null, effects.concat([0]));
    var high = Math.max.apply(null, effects.concat([0]));
    bounds.forEach(function (v) {
      low = Math.min(low, Math.max(v, -reach, -100));
      high = Math.max(high, Math.min(v, reach));
    });
    var pad = (high - low) * 0.08 || 1;
    return [low - pad, high + pad];
  }

  function liftChart(element, data) {
    var columns = [data.x, data.x.map(function () { return 0; })];
    var series = [{}, { label: "no change", stroke: "#8a94a3", width: 1, dash: [3, 3], points: { show: false } }];
    var bands = [], entries = [];
    var dots = data.x.length <= 14;
    data.lift.forEach(function (line, i) {
      var c = color(i + 1);
      var first = columns.length;
      columns.push(line.high, line.effect, line.low);
      series.push(
        { label: line.variant + " upper", stroke: c + "55", width: 1, points: { show: false } },
        { label: line.variant, stroke: c, width: 2.5, points: { show: dots, size: 6, fill: c } },
        { label: line.variant + " lower", stroke: c + "55", width: 1, points: { show: false } }
      );
      bands.push({ series: [first, first + 2], fill: c + "22" });
      entries.push({ color: c, label: line.variant + " vs " + data.control + " (band: likely range)" });
    });
    legend(document.getElementById("lift-legend"), entries);
    var range = liftRange(data);
    return new uPlot({
      width: width(element), height: 260, series: series, bands: bands,
      legend: { show: false }, cursor: { points: { show: false } },
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      scales: { x: { time: true }, y: { range: function () { return range; } } },
      axes: [dateAxis(), valueAxis(percent)],
    }, columns, element);
  }

  function unitsChart(element, data) {
    var columns = [data.x];
    var series = [{}];
    var entries = [];
    var dots = data.x.length <= 14;
    data.units.forEach(function (line, i) {
      var c = color(i);
      columns.push(line.values);
      series.push({ label: line.variant, stroke: c, width: 2, points: { show: dots, size: 5, fill: c } });
      entries.push({ color: c, label: line.variant });
    });
    legend(document.getElementById("units-legend"), entries);
    return new uPlot({
      width: width(element), height: 260, series: series,
      legend: { show: false }, cursor: { points: { show: false } },
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(max * 1.08, 1)]; } } },
      axes: [dateAxis(), valueAxis(count)],
    }, columns, element);
  }

  function draw() {
    var source = document.getElementById("chart-data");
    var lift = document.getElementById("lift-chart");
    var units = document.getElementById("units-chart");
    if (source && lift && units && typeof uPlot !== "undefined") {
      var data = JSON.parse(source.textContent);
      var plots = [[lift, liftChart(lift, data)], [units, unitsChart(units, data)]];
      lift.dataset.series = String(data.lift.length);
      units.dataset.series = String(data.units.length);
      window.addEventListener("resize", function () {
        plots.forEach(function (p) { p[1].setSize({ width: width(p[0]), height: 260 }); });
      });
    }
    document.body.dataset.charts = "drawn";
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
