// Live tail of the experiment: on any event, re-render the live part from the server.
// Delivery is at most once, so the server (not the event stream) is the source of truth.
(function () {
  const live = document.getElementById("live");
  if (!live) return;
  let pending = false, socket = null, retry = 500;

  async function refresh() {
    if (pending) return;
    pending = true;
    setTimeout(async () => {
      pending = false;
      const response = await fetch(live.dataset.liveUrl, { headers: { "X-Requested-With": "fetch" } });
      if (response.ok) live.innerHTML = await response.text();
    }, 250); // coalesce bursts of events into one re-render
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}${live.dataset.wsPath}`);
    socket.onopen = () => { retry = 500; refresh(); };
    socket.onmessage = refresh;
    socket.onclose = () => { setTimeout(connect, retry); retry = Math.min(retry * 2, 10000); };
  }
  connect();
})();
