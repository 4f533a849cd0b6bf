// The benchmark's Node.js peer: socket.io 4.8.4 emitting the same `sample` as livedash, at the
// same rate, to every client. WebSocket only and no compression, as socket.io's own performance
// notes advise for fan-out. Usage: node server.js --port N --rate HZ
"use strict";
const http = require("http");
const { Server } = require("socket.io");

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const port = Number(arg("port"));
const rate = Number(arg("rate", "20"));

const httpServer = http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end("node socket.io peer");
});
const io = new Server(httpServer, { transports: ["websocket"], perMessageDeflate: false });

let seq = 0;
const period = 1000 / rate;
let nextAt = performance.now();
function tick() {
  seq += 1;
  const value = Math.round(Math.random() * 10 * 1000) / 1000;
  io.emit("sample", { channel: "random", seq, t: performance.timeOrigin + performance.now(), value });
  nextAt += period; // a late tick is made up, not skipped: the same as livedash's sampler
  setTimeout(tick, Math.max(0, nextAt - performance.now()));
}

httpServer.listen(port, "127.0.0.1", () => setTimeout(tick, 0));
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
