// The experiment page's charts. Their figures come from the server (sweeps/web/charts.py) as JSON
// inside the live part (#charts-data); after live updates this redraws them in place with
// Plotly.react, which keeps the chart divs, zoom and hover instead of rebuilding everything.
(function () {
  "use strict";
  const section = document.getElementById("charts");
  if (!section || !window.Plotly) return;
  const CHARTS = { by_param: "chart-by-param", parallel: "chart-parallel", pareto: "chart-pareto", history: "chart-history",
    importance: "chart-importance" };
  const CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };
  // Redrawing plots costs the browser far more than updating the table (the parallel plot is
  // WebGL), so while a sweep runs the charts follow every few seconds; a finished one at once.
  const REDRAW_EVERY_MS = 3000;
  let lastJson = null, figures = null, timer = null, lastDraw = 0;
  const drawn = {}; // chart key -> the figure JSON on screen, to skip charts that did not change
  // The score-against chart plots cost or latency (the server sends both figures: "pareto" and
  // "pareto_latency"); the choice is the reader's, so it survives live updates.
  let paretoAxis = "cost";

  function figureOf(key) {
    return key === "pareto" && paretoAxis !== "cost" ? figures[`pareto_${paretoAxis}`] : figures[key];
  }

  function update() {
    const script = document.getElementById("charts-data");
    if (!script || script.textContent === lastJson) return;
    lastJson = script.textContent;
    figures = JSON.parse(lastJson);
    clearTimeout(timer);
    timer = setTimeout(draw, figures.active ? Math.max(0, lastDraw + REDRAW_EVERY_MS - Date.now()) : 0);
  }

  function draw() {
    lastDraw = Date.now();
    const ready = figures.runs > 0;
    section.querySelectorAll(".chart-card").forEach((card) => { card.hidden = !ready; });
    document.getElementById("charts-empty").hidden = ready;
    if (!ready) return;
    for (const [key, id] of Object.entries(CHARTS)) {
      const json = JSON.stringify(figureOf(key));
      if (drawn[key] === json) continue;
      drawn[key] = json;
      const element = document.getElementById(id);
      const figure = fitToWidth(figureOf(key), element);
      Plotly.react(element, figure.data, figure.layout, CONFIG);
      if (!element.dataset.clickable) { // once per div: Plotly.react keeps the listeners
        element.dataset.clickable = "1";
        element.on("plotly_click", openRun);
      }
    }
  }

  // On a phone, subplots side by side are too narrow to read: stack them.
  function fitToWidth(figure, element) {
    const grid = figure.layout.grid;
    if (!grid || element.clientWidth >= 560 || grid.columns === 1) return figure;
    const rows = figure.data.length; // one subplot (one trace) per parameter
    return { ...figure, layout: { ...figure.layout, grid: { ...grid, columns: 1, rows }, height: 90 + 240 * rows } };
  }

  // A point's customdata is its run id: clicking it opens the run's page.
  function openRun(event) {
    const runId = event.points && event.points[0] && event.points[0].customdata;
    if (runId) location.href = section.dataset.runUrl.replace("/0/", `/${runId}/`);
  }

  const axisButtons = section.querySelectorAll("[data-pareto-axis]");
  axisButtons.forEach((button) => button.addEventListener("click", () => {
    paretoAxis = button.dataset.paretoAxis;
    axisButtons.forEach((other) => other.setAttribute("aria-pressed", String(other === button)));
    document.getElementById("pareto-title").textContent = button.dataset.title;
    document.getElementById("pareto-note").textContent = button.dataset.note;
    if (figures) { clearTimeout(timer); draw(); } // at once: the reader asked for it
  }));

  update();
  document.addEventListener("live:updated", update);
})();
