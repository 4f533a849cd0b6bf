"""The tutorial's way, as the yardstick: Flask-SocketIO in threading mode, one background thread
emitting every random value to every client as it is made. Same payload as livedash's `sample`."""

import argparse
import random
import time

from flask import Flask
from flask_socketio import SocketIO

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--rate", type=float, default=20.0)
args = parser.parse_args()

app = Flask(__name__)
socketio = SocketIO(app, async_mode="threading")
thread = None


def emit_numbers():
    seq, period = 0, 1.0 / args.rate
    next_at = time.monotonic()
    while True:
        seq += 1
        socketio.emit("sample", {"channel": "random", "seq": seq, "t": time.time() * 1000,
                                 "value": round(random.random() * 10, 3)})
        next_at += period
        socketio.sleep(max(0.0, next_at - time.monotonic()))


@app.get("/")
def index():
    return "baseline"


@app.get("/healthz")
def healthz():
    return {"status": "ok"}


if __name__ == "__main__":
    thread = socketio.start_background_task(emit_numbers)
    socketio.run(app, host="127.0.0.1", port=args.port, allow_unsafe_werkzeug=True, log_output=False)
