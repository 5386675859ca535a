// Refreshes the live part of the dashboard (studies, jobs, failures, queues) every few
// seconds from the server-rendered fragment; no framework, no build step.
(function () {
  "use strict";
  const live = document.getElementById("live");
  if (!live) return;
  const url = live.dataset.src;
  const period = Number(live.dataset.refreshMs || 3000);
  async function refresh() {
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (response.redirected || response.status === 401) { window.location.reload(); return; }
      if (response.ok) live.innerHTML = await response.text();
    } catch (err) {
      console.warn("dashboard refresh failed", err);
    }
  }
  setInterval(refresh, period);
})();
