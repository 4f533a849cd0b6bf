// livedash's page: one card per channel, fed by Socket.IO, with no reload and no click.
//
// Every sample carries a per-channel sequence number (seq). Each channel keeps its samples
// sorted by seq with no repeats, so history that arrives after live samples, or again after
// a reconnect, merges in without duplicates or gaps.
//
// For tests: window.livedash = {socket, channels}; channels is a Map from channel name to
// {info, status, samples: [{seq, t, value}], card, plot}.
(function () {
  "use strict";

  const KEEP = 600; // samples kept per channel (the server's history is no longer)
  const RECENT = 10; // values listed under the chart
  const STALE_INTERVALS = 3; // silent for this many sample intervals: marked stale
  const RETRY_MS = 5000; // when the server closed or refused us, socket.io does not retry by itself
  const COLORS = { dim: "#8b949e", line: "#30363d", accent: "#58a6ff" };
  const FONT = 'system-ui, "DejaVu Sans", sans-serif';

  // The kiosk (the Pi's own screen) opens /?kiosk=1. The server marks <html> too.
  if (new URLSearchParams(location.search).get("kiosk") === "1") {
    document.documentElement.classList.add("kiosk");
  }

  const main = document.getElementById("channels");
  const badge = document.getElementById("connection");
  const template = document.getElementById("card-template");
  const channels = new Map();

  const socket = io({
    transports: ["websocket", "polling"], // websocket first; polling if a proxy blocks it
    reconnection: true,
    reconnectionAttempts: Infinity, // an appliance's screen never gives up
    reconnectionDelay: 500,
    reconnectionDelayMax: 5000,
  });
  window.livedash = { socket, channels };

  // ---- The connection badge: live, reconnecting (socket.io is trying), offline.

  function setConnection(state, text) {
    badge.dataset.state = state;
    badge.textContent = text || state;
  }

  let retry = null;
  function retryLater() {
    clearTimeout(retry);
    retry = setTimeout(() => { if (!socket.connected && !socket.active) socket.connect(); }, RETRY_MS);
  }

  socket.on("connect", () => setConnection("live"));
  socket.on("bye", () => setConnection("reconnecting", "server restarting…"));
  socket.on("disconnect", () => {
    // socket.active: socket.io will reconnect by itself (lost link, server gone). Otherwise
    // the server closed this session on purpose; ask again a little later.
    if (socket.active) {
      if (badge.dataset.state === "live") setConnection("reconnecting", "reconnecting…");
    } else {
      setConnection("offline");
      retryLater();
    }
  });
  socket.on("connect_error", (err) => {
    if (socket.active) return; // a failed attempt; socket.io tries again, the badge says so already
    setConnection("offline", `offline: ${err.message}`); // refused, e.g. "server full"
    retryLater();
  });
  socket.io.on("reconnect_attempt", () => {
    if (badge.dataset.state !== "reconnecting") setConnection("reconnecting", "reconnecting…");
  });
  socket.io.on("reconnect_failed", () => setConnection("offline")); // only with finite attempts

  // ---- Links beyond the page (the MQTT broker): "mqtt: disconnected: why" in the header.

  const links = document.getElementById("links");
  socket.on("link", (link) => {
    let item = links.querySelector(`[data-link="${CSS.escape(link.name)}"]`);
    if (!item) {
      item = document.createElement("span");
      item.dataset.link = link.name;
      links.appendChild(item);
    }
    item.dataset.state = link.state;
    item.textContent = `${link.name}: ${link.state}${link.reason ? `: ${link.reason}` : ""}`;
    item.title = item.textContent;
  });

  // ---- Channels and their cards.

  socket.on("channels", (list) => {
    const names = new Set(list.map((info) => info.name));
    for (const [name, ch] of channels) {
      if (!names.has(name)) { ch.resize.disconnect(); ch.plot.destroy(); ch.card.remove(); channels.delete(name); }
    }
    for (const info of list) {
      const ch = channels.get(info.name) || createChannel(info);
      ch.info = info;
      // A new session: until this channel's history comes, live samples are kept apart too,
      // because history decides which of the samples held from before still stand.
      ch.synced = false;
      ch.early = [];
      renderInfo(ch);
      schedule(ch); // the value's width and the chart's range may follow the new info
    }
    // Cards in the server's order (inserting an element that is already in the page moves it).
    list.forEach((info, i) => {
      const card = channels.get(info.name).card;
      if (main.children[i] !== card) main.insertBefore(card, main.children[i] || null);
    });
    layout();
  });

  function createChannel(info) {
    const card = template.content.firstElementChild.cloneNode(true);
    card.dataset.channel = info.name;
    main.appendChild(card);
    const ch = {
      info, card, samples: [], synced: false, early: [],
      lastArrival: performance.now(), // a channel that never sends goes stale too
      stale: false, widest: 0, plot: null, fontPx: 0,
      get status() { return this.info.status; },
    };
    const box = card.querySelector(".chart");
    ch.plot = makePlot(ch, 12, 300, 150);
    // The chart follows its box: window resizes, the grid changing, the kiosk's screen.
    ch.resize = new ResizeObserver(() => fitChart(ch));
    ch.resize.observe(box);
    channels.set(info.name, ch);
    return ch;
  }

  socket.on("status", (s) => {
    const ch = channels.get(s.channel);
    if (!ch) return;
    ch.info.status = s.status;
    ch.info.reason = s.reason;
    renderInfo(ch);
  });

  // ---- Samples: kept sorted by seq, no repeats, at most KEEP.

  socket.on("history", (h) => resync(h.channel, h.samples || []));
  socket.on("sample", (s) => live(s.channel, [s]));
  socket.on("samples", (frame) => live(frame.channel, frame.samples || [])); // several at once

  const clean = ({ seq, t, value }) => ({ seq, t, value });

  function live(name, incoming) {
    const ch = channels.get(name);
    if (!ch || !incoming.length) return;
    incoming = incoming.map(clean);
    if (!ch.synced) ch.early = ch.early.concat(incoming).slice(-KEEP);
    insert(ch, incoming);
    fresh(ch);
    if (ch.info.status === "starting") { ch.info.status = "ok"; renderInfo(ch); }
    schedule(ch);
  }

  // History is what the server holds now. Samples held from before that are newer than its
  // oldest (or carry the same seqs) belong to a server run that is gone (a restart that lost
  // its saved state numbers from 1 again): they are dropped, not mixed in.
  function resync(name, history) {
    const ch = channels.get(name);
    if (!ch) return;
    history = history.map(clean);
    const newestBefore = ch.samples.length ? ch.samples[ch.samples.length - 1].t : -Infinity;
    const first = history[0];
    ch.samples = first ? ch.samples.filter((s) => s.seq < first.seq && s.t < first.t) : [];
    insert(ch, history);
    insert(ch, ch.early); // live samples of this session that came before their history
    ch.early = [];
    ch.synced = true;
    if (history.length && history[history.length - 1].t > newestBefore) fresh(ch);
    schedule(ch);
  }

  function insert(ch, incoming) {
    const samples = ch.samples;
    for (const s of incoming) {
      if (!samples.length || s.seq > samples[samples.length - 1].seq) {
        samples.push(s); // the usual case: newer than everything held
        continue;
      }
      let lo = 0, hi = samples.length; // binary search: the first held seq >= s.seq
      while (lo < hi) { const mid = (lo + hi) >> 1; if (samples[mid].seq < s.seq) lo = mid + 1; else hi = mid; }
      if (samples[lo].seq !== s.seq) samples.splice(lo, 0, s); // a repeat is ignored
    }
    if (samples.length > KEEP) samples.splice(0, samples.length - KEEP);
  }

  // ---- Drawing: at most once a frame, however fast samples arrive.

  const pending = new Set();
  function schedule(ch) {
    if (!pending.size) requestAnimationFrame(draw);
    pending.add(ch);
  }
  function draw() {
    for (const ch of pending) if (channels.has(ch.info.name)) renderSamples(ch);
    pending.clear();
  }

  function decimals(info) { // 2 where the server gives none (or nonsense)
    const d = info.decimals;
    return Number.isInteger(d) ? Math.min(Math.max(d, 0), 10) : 2;
  }
  function format(ch, value) {
    return typeof value === "number" && Number.isFinite(value) ? value.toFixed(decimals(ch.info)) : "–";
  }

  function renderInfo(ch) {
    const { card, info } = ch;
    card.querySelector(".label").textContent = info.label || info.name;
    card.querySelector(".unit").textContent = info.unit || "";
    card.dataset.status = info.status;
    const faulty = info.status === "fault";
    const fault = card.querySelector(".fault-reason");
    fault.hidden = !faulty;
    fault.textContent = faulty ? (info.reason ? `fault: ${info.reason}` : "fault") : "";
    fault.title = fault.textContent; // the whole reason, where the card cuts it short
    // Times in the list: tenths of a second only where several samples share a second.
    ch.timeFormat = new Intl.DateTimeFormat(undefined, {
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
      ...(info.rate_hz > 1 ? { fractionalSecondDigits: 1 } : {}),
    });
    card.style.setProperty("--unit-chars", (info.unit || "").length);
  }

  function renderSamples(ch) {
    const { card, samples } = ch;
    const last = samples[samples.length - 1];
    const text = last ? format(ch, last.value) : "–";
    card.querySelector(".value").textContent = text;
    card.toggleAttribute("data-has-value", Boolean(last));
    fitValue(ch, text);
    ch.plot.setData(chartData(samples, ch.info.rate_hz));
    card.querySelector(".recent").replaceChildren(...samples.slice(-RECENT).reverse().map((s) => {
      const li = document.createElement("li");
      const v = document.createElement("span");
      const time = document.createElement("time");
      v.className = "v";
      v.textContent = format(ch, s.value);
      time.dateTime = new Date(s.t).toISOString();
      time.textContent = ch.timeFormat.format(s.t);
      li.append(v, " ", time);
      return li;
    }));
  }

  // The value's size comes from the widest text it may show (CSS --chars, in digit widths):
  // the display range and every value seen so far. It only grows, so the number never jumps
  // in size. A point or comma is about half a digit wide.
  const digitWidths = (text) => [...text].reduce((w, c) => w + (".,".includes(c) ? 0.55 : 1), 0);
  function fitValue(ch, text) {
    const { min, max } = ch.info;
    const hints = [min, max].filter((v) => typeof v === "number").map((v) => format(ch, v));
    const widest = Math.max(3.55, ch.widest, ...[text, ...hints].map(digitWidths));
    if (widest !== ch.widest) {
      ch.widest = widest;
      ch.card.style.setProperty("--chars", widest);
    }
  }

  // ---- The chart.

  // Times in seconds and values, with a break wherever nothing was measured for a while (the
  // server was away), so the chart does not draw a line through a time nobody measured.
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

  // min/max are hints: they set the range, and values outside it widen it rather than vanish.
  function yRange(info, lo, hi) {
    const hint = (v) => (typeof v === "number" ? v : null);
    const min = hint(info.min), max = hint(info.max);
    if (lo === null || hi === null) return [min ?? 0, max ?? (min ?? 0) + 1]; // no data yet
    const [a, b] = uPlot.rangeNum(lo, hi, 0.1, true);
    return [min === null ? a : Math.min(min, lo), max === null ? b : Math.max(max, hi)];
  }

  // Ticks on whole seconds and minutes only, labelled as a clock: no "27.650" on a live chart.
  const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];
  const tickTime = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  const tickMinute = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });

  function makePlot(ch, px, width, height) {
    const font = `${px}px ${FONT}`;
    const axis = { stroke: COLORS.dim, font, grid: { stroke: COLORS.line, width: 1 }, ticks: { stroke: COLORS.line, width: 1 } };
    const opts = {
      width, height, legend: { show: false }, cursor: { show: false },
      scales: { x: { time: true }, y: { range: (u, lo, hi) => yRange(ch.info, lo, hi) } },
      axes: [
        { ...axis, space: px * 5.5, size: px * 2 + 8, incrs: TIME_STEPS,
          values: (u, ticks, i, space, step) => ticks.map((v) => (step >= 60 ? tickMinute : tickTime).format(v * 1000)) },
        { ...axis, space: px * 2.5,
          // As wide as its longest label (plus tick and gap), so 1013.25 is not cut off.
          size: (u, values) => Math.ceil(px * 0.62 * Math.max(2, ...(values || []).map((v) => String(v).length))) + 20 },
      ],
      padding: [px / 2, px * 2.5, null, null], // room on the right for the newest time label
      series: [{}, { stroke: COLORS.accent, width: 2, points: { show: false } }],
    };
    const box = ch.card.querySelector(".chart");
    const data = ch.plot ? ch.plot.data : [[], []];
    return new uPlot(opts, data, box);
  }

  function fitChart(ch) {
    const box = ch.card.querySelector(".chart");
    const width = Math.floor(box.clientWidth), height = Math.floor(box.clientHeight);
    if (width <= 0 || height <= 0) return;
    // Bigger labels on bigger charts; uPlot sets fonts when it is made, so make it anew.
    const px = Math.round(Math.min(Math.max(height / 22, width / 45, 12), 20));
    if (px !== ch.fontPx) {
      ch.fontPx = px;
      const old = ch.plot;
      ch.plot = makePlot(ch, px, width, height);
      old.destroy();
    } else {
      ch.plot.setSize({ width, height });
    }
  }

  // ---- Stale: nothing new for STALE_INTERVALS intervals (a sensor gone quiet, a lost link).

  function setStale(ch, stale) {
    if (stale === ch.stale) return;
    ch.stale = stale;
    ch.card.toggleAttribute("data-stale", stale); // an attribute: ".stale" is the marker alone
    ch.card.querySelector(".stale").hidden = !stale;
  }
  function fresh(ch) { // something new: not stale from this moment, not from the next check
    ch.lastArrival = performance.now();
    setStale(ch, false);
  }
  setInterval(() => {
    const now = performance.now();
    for (const ch of channels.values()) {
      setStale(ch, now - ch.lastArrival > (STALE_INTERVALS * 1000) / ch.info.rate_hz);
    }
  }, 200);

  // ---- Layout: the cards share the screen; columns and rows from their count and its shape.

  function layout() {
    const n = Math.max(channels.size, 1);
    const cols = innerWidth >= innerHeight ? (n <= 3 ? n : Math.ceil(Math.sqrt(n))) : 1;
    main.style.setProperty("--cols", cols);
    main.style.setProperty("--rows", Math.ceil(n / cols));
  }
  window.addEventListener("resize", layout);
})();
