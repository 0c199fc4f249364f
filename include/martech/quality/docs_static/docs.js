/* martech: the behaviour Great Expectations' Data Docs expect from jQuery, Bootstrap and bootstrap-table,
   written for these pages only (martech.quality.docs_offline links it and removes GX's inline scripts).
   Tabs, "Show more info" collapses, the "Failed Only" validation filter, and the index tables' sorting,
   search, column filters and row links. The pages read the same without it. */
(function () {
  "use strict";

  function all(selector, root) {
    return Array.prototype.slice.call((root || document).querySelectorAll(selector));
  }

  function target(link) {
    var id = (link.getAttribute("data-target") || link.getAttribute("href") || "").replace(/^#/, "");
    return id ? document.getElementById(id) : null;
  }

  function showTab(link) {
    var pane = target(link);
    var nav = link.closest(".nav");
    if (!pane || !nav) { return; }
    all("[data-toggle=tab]", nav).forEach(function (other) {
      other.classList.remove("active");
      other.setAttribute("aria-selected", "false");
    });
    link.classList.add("active");
    link.setAttribute("aria-selected", "true");
    all(":scope > .tab-pane", pane.parentNode).forEach(function (other) {
      other.classList.remove("active", "show");
    });
    pane.classList.add("active", "show");
  }

  function toggleCollapse(link) {
    var body = target(link);
    if (!body) { return; }
    var open = body.classList.toggle("show");
    all("[data-toggle=collapse]").forEach(function (other) {
      if (target(other) === body) { other.setAttribute("aria-expanded", open ? "true" : "false"); }
    });
  }

  // "Failed Only": hide what GX marks as succeeded (an expectation's row, a column's whole section and
  // its entry in the table of contents); "Show All" brings them back.
  function showValidations(which, label) {
    var hide = which === "failed";
    var hidden = [];
    all(".hide-succeeded-validation-target-child").forEach(function (el) {
      if (el.parentNode) { hidden.push(el.parentNode); }
    });
    all(".hide-succeeded-validation-target").forEach(function (el) { hidden.push(el); });
    all(".hide-succeeded-validations-column-section-target-child").forEach(function (el) {
      var section = el.parentNode && el.parentNode.parentNode;
      if (!section) { return; }
      hidden.push(section);
      if (section.id) {
        all("a[href$='" + section.id + "']").forEach(function (a) { hidden.push(a); });
      }
    });
    hidden.forEach(function (el) { el.hidden = hide; });
    all("[data-martech-show]", label.parentNode).forEach(function (other) {
      other.classList.toggle("active", other === label);
      var input = other.querySelector("input");
      if (input) { input.checked = other === label; }
    });
  }

  function cellValue(row, index) {
    var cell = row.cells[index];
    return cell ? (cell.getAttribute("data-value") || cell.textContent.trim()) : "";
  }

  function compare(a, b) {
    var x = Number(a), y = Number(b);
    if (a.trim() !== "" && b.trim() !== "" && !isNaN(x) && !isNaN(y)) { return x - y; }
    return a.localeCompare(b, undefined, {numeric: true, sensitivity: "base"});
  }

  function makeTable(table) {
    var head = table.tHead.rows[0];
    var body = table.tBodies[0];
    var rows = all(":scope > tr", body);
    var filters = [];
    var search = null;
    var count = document.createElement("span");
    count.className = "martech-count";

    function apply() {
      var words = search ? search.value.trim().toLowerCase() : "";
      var shown = 0;
      rows.forEach(function (row) {
        var ok = !words || row.textContent.toLowerCase().indexOf(words) >= 0;
        filters.forEach(function (f) {
          var value = cellValue(row, f.index);
          var wanted = f.input.value.trim();
          if (!ok || !wanted) { return; }
          if (f.kind === "select") { ok = value === wanted; }
          else if (f.kind === "datepicker") { ok = value.indexOf(wanted) === 0; }
          else { ok = value.toLowerCase().indexOf(wanted.toLowerCase()) >= 0; }
        });
        row.hidden = !ok;
        if (ok) { shown += 1; }
      });
      count.textContent = shown === rows.length ? rows.length + " rows" : shown + " of " + rows.length + " rows";
    }

    function sortBy(th) {
      var index = Array.prototype.indexOf.call(head.cells, th);
      var order = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
      all("th[aria-sort]", head).forEach(function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", order);
      rows.sort(function (a, b) {
        var x = a.cells[index] ? a.cells[index].getAttribute("data-sort") || "" : "";
        var y = b.cells[index] ? b.cells[index].getAttribute("data-sort") || "" : "";
        return order === "ascending" ? compare(x, y) : compare(y, x);
      });
      rows.forEach(function (row) { body.appendChild(row); });
    }

    all("th[data-sortable]", head).forEach(function (th) {
      th.tabIndex = 0;
      th.addEventListener("click", function () { sortBy(th); });
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sortBy(th); } });
    });

    if (table.getAttribute("data-filter-control") === "true") {
      var line = document.createElement("tr");
      line.className = "martech-filters";
      all(":scope > th", head).forEach(function (th, index) {
        var cell = document.createElement("th");
        var kind = th.getAttribute("data-filter");
        if (kind) {
          var input;
          if (kind === "select") {
            input = document.createElement("select");
            input.appendChild(new Option("", ""));
            var values = {};
            rows.forEach(function (row) { values[cellValue(row, index)] = true; });
            Object.keys(values).sort(compare).forEach(function (v) { input.appendChild(new Option(v, v)); });
          } else {
            input = document.createElement("input");
            input.type = kind === "datepicker" ? "date" : "search";
          }
          input.setAttribute("aria-label", "filter " + th.textContent.trim());
          input.addEventListener("input", apply);
          input.addEventListener("change", apply);
          filters.push({index: index, kind: kind, input: input});
          cell.appendChild(input);
        }
        line.appendChild(cell);
      });
      table.tHead.appendChild(line);
    }

    var bar = document.createElement("div");
    bar.className = "martech-toolbar";
    bar.appendChild(count);
    if (table.getAttribute("data-search") === "true") {
      search = document.createElement("input");
      search.type = "search";
      search.placeholder = "Search";
      search.setAttribute("aria-label", "search the table");
      search.addEventListener("input", apply);
      bar.appendChild(search);
    }
    if (filters.length || search) {
      var clear = document.createElement("button");
      clear.type = "button";
      clear.className = "btn btn-sm btn-secondary";
      clear.textContent = "Clear filters";
      clear.addEventListener("click", function () {
        filters.forEach(function (f) { f.input.value = ""; });
        if (search) { search.value = ""; }
        apply();
      });
      bar.appendChild(clear);
    }
    table.parentNode.insertBefore(bar, table);

    body.addEventListener("click", function (e) {
      var row = e.target.closest("tr[data-href]");
      if (row && !e.target.closest("a")) { window.location.href = row.getAttribute("data-href"); }
    });
    apply();
  }

  document.addEventListener("click", function (e) {
    var tab = e.target.closest("[data-toggle=tab]");
    if (tab) { e.preventDefault(); showTab(tab); return; }
    var collapse = e.target.closest("[data-toggle=collapse]");
    if (collapse) { e.preventDefault(); toggleCollapse(collapse); return; }
    var show = e.target.closest("[data-martech-show]");
    if (show) { e.preventDefault(); showValidations(show.getAttribute("data-martech-show"), show); }
  });

  all("table[data-martech-table]").forEach(makeTable);
}());
