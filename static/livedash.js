// livedash's page: one card per channel, fed by Socket.IO, with no reload and no click.
//
// Every sample carries a per-channel sequence number. Samples are kept per channel sorted by
// seq, so history that arrives after live samples (or again after a reconnect) merges in
// without duplicates or gaps.
(function () {
  "use strict";

  const KEEP = 600; // samples kept per channel, as the server's history
  const RECENT = 10; // the last values listed under the chart, as the tutorial showed
  const STALE_INTERVALS = 3; // silent for this many intervals: marked stale

  const main = document.getElementById("channels");
  const badge = document.getElementById("connection");
  const template = document.getElementById("card-template");
  const channels = new Map(); // name -> {info, samples: [{seq,t,value}], lastArrival, card, plot}

  const socket = io({ transports: ["websocket", "polling"], reconnectionDelayMax: 5000 });
  window.livedash = { socket, channels };

  function setConnection(state, text) {
    badge.dataset.state = state;
    badge.textContent = text || state;
  }

  socket.on("connect", () => setConnection("live"));
  socket.on("bye", () => setConnection("reconnecting", "server restarting…"));
  socket.on("disconnect", (reason) => {
    setConnection("reconnecting", "reconnecting…");
    // A server-side disconnect is not retried by socket.io itself: ask again.
    if (reason === "io server disconnect") setTimeout(() => socket.connect(), 1000);
  });
  socket.io.on("reconnect_attempt", () => setConnection("reconnecting", "reconnecting…"));
  window.addEventListener("offline", () => setConnection("offline"));

  socket.on("channels", (list) => {
    const names = new Set(list.map((c) => c.name));
    for (const [name, ch] of channels) {
      if (!names.has(name)) { ch.card.remove(); channels.delete(name); }
    }
    for (const info of list) {
      const ch = channels.get(info.name) || createCard(info);
      ch.info = info;
      renderInfo(ch);
    }
    layout();
  });

  socket.on("history", (h) => merge(h.channel, h.samples));
  socket.on("sample", (s) => merge(s.channel, [s]));
  socket.on("samples", (frame) => merge(frame.channel, frame.samples));
  socket.on("status", (s) => {
    const ch = channels.get(s.channel);
    if (!ch) return;
    ch.info.status = s.status;
    ch.info.reason = s.reason;
    renderInfo(ch);
  });

  function createCard(info) {
    const card = template.content.firstElementChild.cloneNode(true);
    card.dataset.channel = info.name;
    main.appendChild(card);
    const ch = { info, samples: [], lastArrival: 0, card, plot: null, dirty: false };
    ch.plot = new uPlot(chartOptions(info), [[], []], card.querySelector(".chart"));
    new ResizeObserver(() => fitChart(ch)).observe(card.querySelector(".chart"));
    channels.set(info.name, ch);
    return ch;
  }

  function chartOptions(info) {
    const fixed = info.min !== null && info.max !== null;
    return {
      width: 300, height: 150, legend: { show: false }, cursor: { show: false },
      scales: { x: { time: true }, y: fixed ? { range: [info.min, info.max] } : { auto: true } },
      axes: [
        { stroke: "#8b949e", grid: { stroke: "#30363d" }, ticks: { stroke: "#30363d" } },
        { stroke: "#8b949e", grid: { stroke: "#30363d" }, ticks: { stroke: "#30363d" }, size: 50 },
      ],
      series: [{}, { stroke: "#58a6ff", width: 2, points: { show: false } }],
    };
  }

  function fitChart(ch) {
    const box = ch.card.querySelector(".chart");
    const width = Math.floor(box.clientWidth), height = Math.floor(box.clientHeight);
    if (width > 0 && height > 0) ch.plot.setSize({ width, height });
  }

  // Merge samples into a channel, keeping it sorted by seq and free of repeats.
  function merge(name, incoming) {
    const ch = channels.get(name);
    if (!ch || !incoming.length) return;
    const samples = ch.samples;
    const last = samples.length ? samples[samples.length - 1].seq : 0;
    if (incoming.every((s, i) => s.seq > (i ? incoming[i - 1].seq : last))) {
      samples.push(...incoming); // the usual case: newer than everything held
    } else {
      const bySeq = new Map(samples.map((s) => [s.seq, s]));
      for (const s of incoming) bySeq.set(s.seq, s);
      ch.samples = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
    }
    if (ch.samples.length > KEEP) ch.samples.splice(0, ch.samples.length - KEEP);
    ch.lastArrival = performance.now();
    if (ch.info.status === "starting") ch.info.status = "ok";
    schedule(ch);
  }

  // Draw at most once a frame, however fast samples arrive.
  const pending = new Set();
  function schedule(ch) {
    if (!pending.size) requestAnimationFrame(draw);
    pending.add(ch);
  }
  function draw() {
    for (const ch of pending) renderSamples(ch);
    pending.clear();
  }

  function format(ch, value) {
    return Number(value).toFixed(ch.info.decimals);
  }

  // Times in seconds and values, with a break wherever the server was away (a restart),
  // so the chart does not draw a line through a time nobody measured.
  function chartData(samples, rate) {
    const xs = [], ys = [], gap = (STALE_INTERVALS * 1000) / rate;
    for (let i = 0; i < samples.length; i++) {
      if (i && samples[i].t - samples[i - 1].t > gap) {
        xs.push((samples[i - 1].t + samples[i].t) / 2000);
        ys.push(null);
      }
      xs.push(samples[i].t / 1000);
      ys.push(samples[i].value);
    }
    return [xs, ys];
  }

  function renderInfo(ch) {
    const { card, info } = ch;
    card.querySelector(".label").textContent = info.label;
    card.querySelector(".unit").textContent = info.unit;
    const fault = card.querySelector(".fault-reason");
    fault.hidden = info.status !== "fault";
    fault.textContent = info.status === "fault" ? `fault: ${info.reason}` : "";
    card.classList.toggle("fault", info.status === "fault");
  }

  function renderSamples(ch) {
    const { card, samples } = ch;
    if (!samples.length) return;
    card.querySelector(".value").textContent = format(ch, samples[samples.length - 1].value);
    ch.plot.setData(chartData(samples, ch.info.rate_hz));
    const list = card.querySelector(".recent");
    list.replaceChildren(...samples.slice(-RECENT).reverse().map((s) => {
      const li = document.createElement("li");
      li.textContent = format(ch, s.value);
      li.title = new Date(s.t).toLocaleTimeString();
      return li;
    }));
  }

  // Stale: nothing for STALE_INTERVALS intervals (a sensor that went quiet, or a lost link).
  setInterval(() => {
    const now = performance.now();
    for (const ch of channels.values()) {
      const silent = ch.lastArrival && now - ch.lastArrival > (STALE_INTERVALS * 1000) / ch.info.rate_hz;
      ch.card.classList.toggle("stale", Boolean(silent));
      ch.card.querySelector(".stale").hidden = !silent;
    }
  }, 250);

  // Share the screen: columns and rows from the channel count and the screen's shape.
  function layout() {
    const n = Math.max(channels.size, 1);
    const landscape = innerWidth >= innerHeight;
    const cols = landscape ? (n <= 3 ? n : Math.ceil(Math.sqrt(n))) : 1;
    main.style.setProperty("--cols", cols);
    main.style.setProperty("--rows", Math.ceil(n / cols));
  }
  window.addEventListener("resize", layout);
})();
