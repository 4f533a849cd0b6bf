// livedash's page: one card per channel, fed by Socket.IO, with no reload and no click.
//
// Every sample carries a per-channel sequence number (seq). Each channel keeps its samples
// sorted by seq with no repeats, so history that arrives after live samples, or again after
// a reconnect, merges in without duplicates or gaps.
//
// One time window for every card (the control in the header, or ?window=). Where a channel's
// raw ring is shorter than the window (its info.raw_span_s), the server sends its aggregates
// (buckets of min, max, mean, count) and the page folds the live samples after their seq onto
// them, so the band and the mean line stay current without asking again.
//
// For tests: window.livedash = {socket, channels, view}; channels is a Map from channel name to
// {info, status, samples: [{seq, t, value}], agg, card, plot}; view is {window, windowS, now()}.
(function () {
  "use strict";

  const RECENT = 10; // values listed under the chart
  const STALE_INTERVALS = 3; // silent for this many sample intervals: marked stale (and a gap)
  const RETRY_MS = 5000; // when the server closed or refused us, socket.io does not retry by itself
  const FONT = 'system-ui, "DejaVu Sans", sans-serif';
  const MIN_PX = 18; // no text smaller, on any screen (readable from three metres on 7 inches)

  const root = document.documentElement;
  const params = new URLSearchParams(location.search);
  // The kiosk (the Pi's own screen) opens /?kiosk=1. The server marks <html> too.
  if (params.get("kiosk") === "1") root.classList.add("kiosk");

  // ---- Theme: ?theme=light|dark, else what the browser prefers (and follows it).
  const prefersLight = matchMedia("(prefers-color-scheme: light)");
  function applyTheme() {
    const asked = params.get("theme");
    root.dataset.theme = asked === "light" || asked === "dark" ? asked : (prefersLight.matches ? "light" : "dark");
  }
  applyTheme();
  const css = (name) => getComputedStyle(root).getPropertyValue(name).trim();

  // ---- The window: one for all cards. Names and seconds come from the server (app/aggregates.py).
  const WINDOWS = JSON.parse(root.dataset.windows);
  const view = {
    window: WINDOWS[params.get("window")] ? params.get("window") : root.dataset.defaultWindow,
    get windowS() { return WINDOWS[this.window]; },
    offset: 0, // the server's clock minus ours, from the newest sample: charts end at the server's now
    now() { return Date.now() + this.offset; },
  };

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
    auth: (send) => send({ window: view.window }), // asked on every (re)connect: the window of now
  });
  window.livedash = { socket, channels, view };

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

  // ---- The window control.

  const buttons = [...document.querySelectorAll("#window button")];
  function setWindow(name, chosen = true) {
    if (!WINDOWS[name]) return;
    view.window = name;
    for (const b of buttons) b.setAttribute("aria-pressed", String(b.dataset.window === name));
    if (chosen) { // a reload keeps what was chosen; a URL that names no window is left as it is
      const url = new URL(location.href);
      url.searchParams.set("window", name);
      history.replaceState(null, "", url);
    }
    for (const ch of channels.values()) {
      if (ch.agg && ch.agg.window !== name) ch.agg = null; // the new window's buckets are on their way
      renderInfo(ch);
      schedule(ch, true);
    }
    if (socket.connected) socket.emit("window", name);
  }
  for (const b of buttons) b.addEventListener("click", () => setWindow(b.dataset.window));
  setWindow(view.window, false);

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
      ch.agg = null; // this session's aggregates follow its history
      renderInfo(ch);
      schedule(ch, true); // the value's width and the chart's range may follow the new info
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
      info, card, samples: [], synced: false, early: [], agg: null,
      lastArrival: performance.now(), // a channel that never sends goes stale too
      stale: false, widest: 0, plot: null, fontPx: 0, chartAt: -Infinity,
      stats: emptyStats(), // over the window: from the last chart drawn, and what came since
      get status() { return this.info.status; },
    };
    const box = card.querySelector(".chart");
    ch.plot = makePlot(ch, MIN_PX, 300, 150);
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

  socket.on("level", (l) => {
    const ch = channels.get(l.channel);
    if (!ch) return;
    ch.info.level = l.level;
    ch.info.limit = l.limit;
    renderInfo(ch);
  });

  // ---- Samples: kept sorted by seq, no repeats, at most as many as the server's ring.

  socket.on("history", (h) => resync(h.channel, h.samples || []));
  socket.on("sample", (s) => live(s.channel, [s]));
  socket.on("samples", (frame) => live(frame.channel, frame.samples || [])); // several at once
  socket.on("aggregates", (a) => takeAggregates(a));

  const clean = ({ seq, t, value }) => ({ seq, t, value });
  const keep = (ch) => Math.max(10, Math.round(ch.info.raw_span_s * ch.info.rate_hz) || 600);

  function live(name, incoming) {
    const ch = channels.get(name);
    if (!ch || !incoming.length) return;
    incoming = incoming.map(clean);
    if (!ch.synced) ch.early = ch.early.concat(incoming).slice(-keep(ch));
    insert(ch, incoming);
    fold(ch, incoming);
    for (const s of incoming) addToStats(ch.stats, s.value);
    view.offset = incoming[incoming.length - 1].t - Date.now();
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
    schedule(ch, true);
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
    const max = keep(ch);
    if (samples.length > max) samples.splice(0, samples.length - max);
  }

  // ---- Aggregates: the server's buckets up to its seq, then the live samples folded on.

  function takeAggregates(a) {
    const ch = channels.get(a.channel);
    if (!ch || a.window !== view.window) return; // an answer for a window since left
    const width = a.width_s * 1000;
    ch.agg = {
      window: a.window, width, seq: a.seq,
      buckets: a.buckets.map((b) => ({ t: b.t, min: b.min, max: b.max, sum: b.mean * b.count, count: b.count })),
    };
    fold(ch, ch.samples); // samples held that the server had not folded in when it answered
    schedule(ch, true);
  }

  function fold(ch, samples) {
    const agg = ch.agg;
    if (!agg) return;
    const buckets = agg.buckets;
    for (const s of samples) {
      if (s.seq <= agg.seq) continue;
      agg.seq = s.seq;
      const t = Math.floor(s.t / agg.width) * agg.width;
      const last = buckets[buckets.length - 1];
      if (last && t <= last.t) { // this bucket (or, the clock stepped back, the newest one)
        last.min = Math.min(last.min, s.value);
        last.max = Math.max(last.max, s.value);
        last.sum += s.value;
        last.count += 1;
      } else {
        buckets.push({ t, min: s.value, max: s.value, sum: s.value, count: 1 });
      }
    }
    const oldest = view.now() - view.windowS * 1000 - agg.width;
    let drop = 0;
    while (drop < buckets.length && buckets[drop].t < oldest) drop++;
    if (drop) buckets.splice(0, drop);
  }

  // ---- Drawing: at most once a frame, however fast samples arrive; the chart only when the
  // window has moved by about a pixel (or something else changed), which keeps a Pi cool.

  const pending = new Map(); // ch -> the chart must be redrawn now
  function schedule(ch, chartToo = false) {
    if (!pending.size) requestAnimationFrame(draw);
    pending.set(ch, pending.get(ch) || chartToo);
  }
  function draw() {
    const now = performance.now();
    for (const [ch, chartToo] of pending) {
      if (!channels.has(ch.info.name)) continue;
      renderValue(ch);
      const pixelMs = (view.windowS * 1000) / Math.max(ch.plot.bbox.width / devicePixelRatio || 300, 100);
      if (chartToo || now - ch.chartAt >= Math.max(pixelMs, 50)) {
        ch.chartAt = now;
        renderChart(ch);
      }
      renderStats(ch);
    }
    pending.clear();
  }
  // The window slides even when nothing arrives (a fault, a quiet channel).
  setInterval(() => { for (const ch of channels.values()) schedule(ch); }, 1000);

  function decimals(info) { // 2 where the server gives none (or nonsense)
    const d = info.decimals;
    return Number.isInteger(d) ? Math.min(Math.max(d, 0), 10) : 2;
  }
  function format(ch, value) {
    return typeof value === "number" && Number.isFinite(value) ? value.toFixed(decimals(ch.info)) : "–";
  }
  const hasLimits = (info) => Boolean(info.limits) &&
    ["warn_above", "warn_below", "alarm_above", "alarm_below"].some((k) => typeof info.limits[k] === "number");

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
    // The level: a word as well as a colour. A fault is not a level: it hides it.
    const level = card.querySelector(".level");
    card.dataset.level = info.level || "ok";
    level.hidden = faulty || !hasLimits(info);
    level.textContent = { ok: "ok", warn: "warning", alarm: "ALARM" }[info.level] || "ok";
    level.title = info.level && info.level !== "ok" && typeof info.limit === "number"
      ? `beyond ${format(ch, info.limit)} ${info.unit || ""}`.trim() : "within limits";
    const link = card.querySelector(".download");
    link.href = `/api/history/${encodeURIComponent(info.name)}.csv?window=${view.window}`;
    link.setAttribute("aria-label", `download ${info.label || info.name}, last ${view.window}, as CSV`);
    // Times in the list: tenths of a second only where several samples share a second.
    ch.timeFormat = new Intl.DateTimeFormat(undefined, {
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
      ...(info.rate_hz > 1 ? { fractionalSecondDigits: 1 } : {}),
    });
    card.style.setProperty("--unit-chars", (info.unit || "").length);
  }

  function renderValue(ch) {
    const { card, samples } = ch;
    const last = samples[samples.length - 1];
    const text = last ? format(ch, last.value) : "–";
    card.querySelector(".value").textContent = text;
    card.toggleAttribute("data-has-value", Boolean(last));
    fitValue(ch, text);
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

  function renderChart(ch) {
    const { data, stats } = chartData(ch, view.now());
    ch.plot.setData(data);
    ch.stats = stats;
  }

  const emptyStats = () => ({ min: Infinity, max: -Infinity, sum: 0, count: 0 });
  function addToStats(stats, value, min = value, max = value, count = 1) {
    stats.min = Math.min(stats.min, min);
    stats.max = Math.max(stats.max, max);
    stats.sum += value;
    stats.count += count;
  }
  function renderStats(ch) {
    const { min, max, sum, count } = ch.stats;
    const shown = count ? { min, max, mean: sum / count } : {};
    for (const k of ["min", "max", "mean"]) ch.card.querySelector(`.stats .${k}`).textContent = format(ch, shown[k]);
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

  // The window's data as uPlot wants it: [times (s), value or mean, min, max], with a null
  // wherever nothing was measured for a while (server away, sensor fault), so no line or band
  // is drawn across a time nobody measured (uPlot's spanGaps is off); and its stats.
  const aggregated = (ch) => view.windowS > ch.info.raw_span_s;
  function chartData(ch, now) {
    const from = now - view.windowS * 1000;
    const xs = [], ys = [], lo = [], hi = [];
    const stats = emptyStats();
    const point = (t, y, a, b) => { xs.push(t / 1000); ys.push(y); lo.push(a); hi.push(b); };
    if (aggregated(ch)) {
      const agg = ch.agg;
      const buckets = agg ? agg.buckets : [];
      const gap = STALE_INTERVALS * Math.max(agg ? agg.width : 1000, 1000 / ch.info.rate_hz);
      let prev = null;
      for (const b of buckets) {
        if (b.t + (agg.width) <= from) continue;
        if (prev && b.t - prev.t > gap) point((prev.t + b.t) / 2 + agg.width / 2, null, null, null);
        point(b.t + agg.width / 2, b.sum / b.count, b.min, b.max);
        addToStats(stats, b.sum, b.min, b.max, b.count);
        prev = b;
      }
    } else {
      const gap = (STALE_INTERVALS * 1000) / ch.info.rate_hz;
      let prev = null;
      for (const s of ch.samples) {
        if (s.t < from) continue;
        if (prev && s.t - prev.t > gap) point((prev.t + s.t) / 2, null, null, null);
        point(s.t, s.value, null, null);
        addToStats(stats, s.value);
        prev = s;
      }
    }
    return { data: [xs, ys, lo, hi], stats };
  }

  const LIMIT_KEYS = ["alarm_above", "warn_above", "warn_below", "alarm_below"];
  const limitsOf = (info) => LIMIT_KEYS.map((k) => [k, info.limits && info.limits[k]]).filter(([, v]) => typeof v === "number");

  // min/max are hints: they set the range, and values outside it widen it rather than vanish.
  // Limits are in it too: a limit off the chart would say nothing.
  function yRange(info, lo, hi) {
    const hint = (v) => (typeof v === "number" ? v : null);
    const limits = limitsOf(info).map(([, v]) => v);
    let min = hint(info.min), max = hint(info.max);
    if (limits.length) {
      min = Math.min(min ?? Infinity, ...limits);
      max = Math.max(max ?? -Infinity, ...limits);
    }
    if (lo === null || hi === null) return [min ?? 0, max ?? (min ?? 0) + 1]; // no data yet
    const [a, b] = uPlot.rangeNum(lo, hi, 0.1, true);
    return [min === null ? a : Math.min(min, lo), max === null ? b : Math.max(max, hi)];
  }

  // The limits as dashed lines across the plot, in their level's colour.
  function drawLimits(ch) {
    return (u) => {
      const ctx = u.ctx, { left, top, width, height } = u.bbox;
      ctx.save();
      ctx.lineWidth = 2 * devicePixelRatio;
      ctx.setLineDash([8 * devicePixelRatio, 6 * devicePixelRatio]);
      for (const [key, value] of limitsOf(ch.info)) {
        const y = Math.round(u.valToPos(value, "y", true));
        if (y < top || y > top + height) continue;
        ctx.strokeStyle = css(key.startsWith("alarm") ? "--bad" : "--warn");
        ctx.beginPath();
        ctx.moveTo(left, y);
        ctx.lineTo(left + width, y);
        ctx.stroke();
      }
      ctx.restore();
    };
  }

  // Ticks on whole seconds and minutes only, labelled as a clock: no "27.650" on a live chart.
  const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  const tickTime = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  const tickMinute = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });

  function makePlot(ch, px, width, height) {
    const font = `${px}px ${FONT}`;
    const colors = { dim: css("--dim"), line: css("--line"), accent: css("--accent"), band: css("--band") };
    const axis = { stroke: colors.dim, font, grid: { stroke: colors.line, width: 1 }, ticks: { stroke: colors.line, width: 1 } };
    const opts = {
      width, height, legend: { show: false }, cursor: { show: false },
      scales: {
        // Every card shows the same stretch of time: the window, ending at the server's now.
        x: { time: true, range: () => { const now = view.now() / 1000; return [now - view.windowS, now]; } },
        y: { range: (u, lo, hi) => yRange(ch.info, lo, hi) },
      },
      axes: [
        { ...axis, space: px * 4.6, size: px * 2 + 8, incrs: TIME_STEPS,
          values: (u, ticks, i, space, step) => ticks.map((v) => (step >= 60 ? tickMinute : tickTime).format(v * 1000)) },
        { ...axis, space: px * 2.2,
          // As wide as its longest label (plus tick and gap), so 1013.25 is not cut off.
          size: (u, values) => Math.ceil(px * 0.62 * Math.max(2, ...(values || []).map((v) => String(v).length))) + 20 },
      ],
      padding: [px / 2, px * 2.5, null, null], // room on the right for the newest time label
      series: [
        {},
        { stroke: colors.accent, width: 2, spanGaps: false, points: { show: false } }, // the value, or the mean
        { stroke: colors.band, width: 1, spanGaps: false, points: { show: false } }, // min
        { stroke: colors.band, width: 1, spanGaps: false, points: { show: false } }, // max
      ],
      bands: [{ series: [3, 2], fill: colors.band }], // between min and max
      hooks: { draw: [drawLimits(ch)] },
    };
    const box = ch.card.querySelector(".chart");
    const data = ch.plot ? ch.plot.data : [[], [], [], []];
    return new uPlot(opts, data, box);
  }

  function fitChart(ch, force = false) {
    const box = ch.card.querySelector(".chart");
    const width = Math.floor(box.clientWidth), height = Math.floor(box.clientHeight);
    if (width <= 0 || height <= 0) return;
    // Bigger labels on bigger charts; uPlot sets fonts when it is made, so make it anew.
    const px = Math.round(Math.min(Math.max(height / 16, width / 45, MIN_PX), 24));
    if (px !== ch.fontPx || force) {
      ch.fontPx = px;
      const old = ch.plot;
      ch.plot = makePlot(ch, px, width, height);
      old.destroy();
    } else {
      ch.plot.setSize({ width, height });
    }
  }
  prefersLight.addEventListener("change", () => {
    applyTheme();
    for (const ch of channels.values()) { fitChart(ch, true); schedule(ch, true); }
  });

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
