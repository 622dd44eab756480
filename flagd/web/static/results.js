// The two plots of an experiment page, drawn with uPlot from the JSON the server put in #chart-data.
(function () {
  "use strict";
  var palette = ["#2e6fd1", "#c0392b", "#1f8a4c", "#8e44ad", "#d68910", "#16a085", "#7f8c8d"];

  function size(element) {
    return { width: Math.max(element.clientWidth, 320), height: 300 };
  }

  function liftChart(element, data) {
    var columns = [data.x];
    var series = [{ label: "day" }];
    var bands = [];
    data.lift.forEach(function (line, i) {
      var color = palette[(i + 1) % palette.length];
      var first = columns.length;
      columns.push(line.high, line.effect, line.low);
      series.push(
        { label: line.variant + " upper", stroke: color, width: 1, dash: [4, 4], value: legend },
        { label: line.variant + " lift", stroke: color, width: 2, value: legend },
        { label: line.variant + " lower", stroke: color, width: 1, dash: [4, 4], value: legend }
      );
      bands.push({ series: [first, first + 2], fill: color + "22" });
    });
    var box = size(element);
    return new uPlot({
      width: box.width, height: box.height, series: series, bands: bands,
      axes: [{}, { label: "% vs " + data.control, values: function (u, ticks) { return ticks.map(function (tick) { return percent(tick); }); } }],
      scales: { x: { time: true } },
    }, columns, element);
  }

  function unitsChart(element, data) {
    var columns = [data.x];
    var series = [{ label: "day" }];
    data.units.forEach(function (line, i) {
      columns.push(line.values);
      series.push({ label: line.variant, stroke: palette[i % palette.length], width: 2 });
    });
    var box = size(element);
    return new uPlot({
      width: box.width, height: box.height, series: series,
      axes: [{}, { label: "units (cumulative)" }], scales: { x: { time: true } },
    }, columns, element);
  }

  function percent(value) {
    return value === null || value === undefined ? "—" : (value > 0 ? "+" : "") + value.toFixed(1) + "%";
  }

  function legend(u, value) {
    return percent(value);
  }

  function draw() {
    var source = document.getElementById("chart-data");
    if (!source || typeof uPlot === "undefined") { return; }
    var data = JSON.parse(source.textContent);
    var lift = document.getElementById("lift-chart");
    var units = document.getElementById("units-chart");
    lift.dataset.series = String(liftChart(lift, data).series.length - 1);
    units.dataset.series = String(unitsChart(units, data).series.length - 1);
    document.body.dataset.charts = "drawn";
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
