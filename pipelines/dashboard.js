// Embeds every chart (its datasets injected from the one inline data block), filters the
// scorecard table with the same inputs the charts' Vega-Lite parameters are bound to, and
// exposes the views as window.closeDashboard for tests and the browser console.
(function () {
  "use strict";
  var read = function (id) { return JSON.parse(document.getElementById(id).textContent); };
  var data = read("close-dashboard-data");
  var charts = read("close-dashboard-charts");
  var views = {};
  var embedOptions = {
    renderer: "svg",
    actions: { export: true, source: false, compiled: false, editor: false },
  };

  var embeds = charts.map(function (chart) {
    var spec = chart.spec;
    spec.datasets = {};
    chart.datasets.forEach(function (name) { spec.datasets[name] = data[name] || []; });
    return vegaEmbed("#" + chart.id, spec, embedOptions).then(function (result) {
      views[chart.id] = result.view;
    }).catch(function (error) {
      var element = document.getElementById(chart.id);
      element.className += " chart-error";
      element.textContent = "This chart could not be drawn: " + error;
      console.error(error);
      throw error;
    });
  });

  function value(id) {
    var element = document.getElementById(id);
    return element ? element.value : "";
  }

  function filterScorecard() {
    var table = document.getElementById("scorecard-table");
    if (!table) { return; }
    var from = value("date-from"), to = value("date-to"), segment = value("segment-filter");
    var shown = 0;
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      var inRange = (!from || row.dataset.monthEnd > from) && (!to || row.dataset.monthStart <= to);
      var inSegment = !segment || row.dataset.segment === undefined || row.dataset.segment === segment;
      row.hidden = !(inRange && inSegment);
      if (!row.hidden) { shown += 1; }
    });
    document.getElementById("scorecard-empty").hidden = shown > 0;
  }

  ["date-from", "date-to", "segment-filter"].forEach(function (id) {
    var element = document.getElementById(id);
    if (element) { element.addEventListener("input", filterScorecard); }
  });
  document.getElementById("date-reset").addEventListener("click", function (event) {
    [["date-from", event.target.dataset.from], ["date-to", event.target.dataset.to]].forEach(
      function (pair) {
        var element = document.getElementById(pair[0]);
        element.value = pair[1];
        element.dispatchEvent(new Event("input", { bubbles: true }));
      }
    );
  });
  filterScorecard();

  window.closeDashboard = {
    views: views,
    data: data,
    ready: Promise.all(embeds).then(function () { return Object.keys(views).length; }),
  };
})();
