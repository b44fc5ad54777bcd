// nam-kg's set-up of YASGUI (ours, not part of the vendored package). Loaded as a file, not
// inline, so a Content-Security-Policy of script-src 'self' suffices.
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("namkg-config").textContent);
  // YASQE builds GET URLs with new URL(endpoint), which needs an absolute URL.
  var endpoint = new URL(cfg.endpoint, window.location.href).href;
  var examples = cfg.examples || [];

  // Autocompleters "property" and "class" ask lov.linkeddata.es while typing: keep them off so
  // the page talks to this server only. Prefix completion uses the list bundled in the JS.
  var completers = Yasgui.Yasqe.defaults.autocompleters;
  for (var i = completers.length - 1; i >= 0; i--) {
    if (completers[i] === "property" || completers[i] === "class") completers.splice(i, 1);
  }

  var yasgui = new Yasgui(document.getElementById("yasgui"), {
    requestConfig: { endpoint: endpoint, method: "POST" },
    copyEndpointOnNewTab: true,
    // No localStorage: a stale endpoint or query from another site never replaces ours.
    persistenceId: null,
    endpointCatalogueOptions: { getData: function () { return [{ endpoint: endpoint }]; } },
    yasqe: { persistenceId: null },
    yasr: { persistenceId: null }
  });
  window.namkgYasgui = yasgui;  // for tests and the browser console

  function show(index, run) {
    var ex = examples[index];
    var tab = yasgui.getTab();
    if (!ex || !tab) return;
    tab.setName(ex.name.length > 40 ? ex.name.slice(0, 39) + "…" : ex.name);
    tab.setEndpoint(endpoint);
    tab.setQuery(ex.query);
    var links = document.querySelectorAll(".examples .example");
    for (var j = 0; j < links.length; j++) {
      links[j].classList.toggle("active", links[j].getAttribute("data-example") === String(index));
    }
    if (run) tab.query();
  }

  document.querySelectorAll(".examples .example").forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      show(Number(link.getAttribute("data-example")), true);
    });
  });

  // Result links to our own IRIs open this server's page for them (the base may not resolve
  // here, e.g. before the w3id redirect exists or on a local copy).
  var base = cfg.base || "";
  var served = /^(id\/.+|ontology(#.*)?|dataset)$/;
  document.getElementById("yasgui").addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[href]");
    if (!base || !link || link.href.indexOf(base) !== 0) return;
    var rest = link.href.slice(base.length);
    if (served.test(rest)) link.href = new URL(rest, endpoint).href;  // beside /sparql
  }, true);

  // A shared link (query in the URL) wins; otherwise start with the first example.
  if (!window.location.search && !window.location.hash) show(0, false);
})();
