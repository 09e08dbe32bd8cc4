// Draws the account page's two charts with uPlot from the JSON the server put in the page
// (<script type="application/json" id="daily-data">). Amounts arrive as exact decimal
// text; they become floats here, for drawing only.
(function () {
  "use strict";
  var source = document.getElementById("daily-data");
  if (!source || typeof uPlot === "undefined") return;
  var days = JSON.parse(source.textContent);
  var x = days.map(function (d) { return Date.parse(d.day + "T00:00:00Z") / 1000; });
  var balance = days.map(function (d) { return parseFloat(d.balance); });
  var usage = days.map(function (d) { return parseFloat(d.usage); });

  function showLastDay(u) {
    if (x.length) u.setLegend({ idx: x.length - 1 });
  }

  function draw(id, label, values, colour, bars) {
    var box = document.getElementById(id);
    if (!box) return null;
    var series = { label: label, stroke: colour, width: 2, fill: bars ? colour + "99" : colour + "22" };
    if (bars) series.paths = uPlot.paths.bars({ size: [0.7, 40] });
    var options = {
      width: Math.max(box.clientWidth, 240),
      height: 240,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      // Half a day of room on each side, so the first and last days' bars are whole.
      scales: {
        x: { time: true, range: function (u, min, max) { return [min - 43200, max + 43200]; } },
        y: bars ? { range: function (u, min, max) { return [0, Math.max(max, 1)]; } } : {},
      },
      axes: [{}, { size: 70 }],
      legend: { live: true },
      series: [{ label: "Day (UTC)" }, series],
      // Away from the cursor the legend shows the last day, not uPlot's "--".
      hooks: {
        ready: [showLastDay],
        setCursor: [function (u) { if (u.cursor.idx == null) showLastDay(u); }],
      },
    };
    var chart = new uPlot(options, [x, values], box);
    box.setAttribute("data-drawn", String(values.length));
    return { chart: chart, box: box };
  }

  var charts = [
    draw("balance-chart", "Balance", balance, "#0b57d0", false),
    draw("usage-chart", "Usage", usage, "#b4530a", true),
  ].filter(Boolean);

  if (typeof ResizeObserver !== "undefined") {
    var observer = new ResizeObserver(function () {
      charts.forEach(function (c) { c.chart.setSize({ width: Math.max(c.box.clientWidth, 240), height: 240 }); });
    });
    charts.forEach(function (c) { observer.observe(c.box); });
  }
})();
