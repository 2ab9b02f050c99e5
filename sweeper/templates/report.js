"use strict";
(function () {
  function cellValue(row, index, type) {
    var cell = row.cells[index];
    if (!cell) { return ""; }
    var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    if (type === "num") { var n = parseFloat(raw); return isNaN(n) ? -Infinity : n; }
    return raw.toLowerCase();
  }
  function sortBy(table, th) {
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var type = th.getAttribute("data-type") || "text";
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(th.parentNode.children, function (other) { other.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, index, type), y = cellValue(b, index, type);
      if (x < y) { return ascending ? -1 : 1; }
      if (x > y) { return ascending ? 1 : -1; }
      return 0;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  function applyFilters(id) {
    var table = document.getElementById(id);
    if (!table) { return; }
    var text = document.querySelector('[data-filter="' + id + '"]');
    var status = document.querySelector('[data-status-filter="' + id + '"]');
    var needle = text ? text.value.trim().toLowerCase() : "";
    var wanted = status ? status.value : "";
    var shown = 0, rows = table.tBodies[0].rows;
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      var ok = (!needle || row.textContent.toLowerCase().indexOf(needle) !== -1) &&
               (!wanted || row.getAttribute("data-status") === wanted);
      row.hidden = !ok;
      if (ok) { shown++; }
    }
    var counter = document.querySelector('[data-shown-for="' + id + '"]');
    if (counter) { counter.textContent = shown + " / " + rows.length; }
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("thead th").forEach(function (th) {
      th.setAttribute("tabindex", "0");
      th.addEventListener("click", function () { sortBy(table, th); });
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sortBy(table, th); } });
    });
    applyFilters(table.id);
  });
  document.querySelectorAll("[data-filter]").forEach(function (input) {
    input.addEventListener("input", function () { applyFilters(input.getAttribute("data-filter")); });
  });
  document.querySelectorAll("[data-status-filter]").forEach(function (select) {
    select.addEventListener("change", function () { applyFilters(select.getAttribute("data-status-filter")); });
  });
}());
