"""The edge agent on the line: a watched folder, results to MQTT (Mosquitto) and a webhook, nothing lost.

Run by server/scripts/test.sh: `edge_watch_test.py VIGIL_BINARY`. It trains a small model with `vigil train`,
packages and installs it to start on boot, starts a private Mosquitto (with persistence, so a subscriber's
session survives the broker's restart) and `vigil edge serve --watch`, then checks:
  1. N images in -> N messages out, each image moved to done/ or anomalous/ as its verdict says;
  2. the broker stopped while images arrive, then restarted -> every message still arrives;
  3. the agent killed with SIGKILL while images arrive, then restarted -> every message arrives, repeats only
     with the same MessageId (at least once);
  4. the webhook down, then up -> it receives every message too; a half-written file is not taken early.
Exits non-zero with a message on the first failed check.
"""
import faulthandler
import getpass
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VIGIL = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/debug/vigil"))
IMAGES = os.path.join(ROOT, "server/tests/fixtures/cookies-small")
COMPONENT = "cookies.watch"
procs = []


def fail(what):
    for p in procs:
        if p.poll() is None:
            p.kill()
    log = os.path.join(work, "agent.log")
    if os.path.exists(log):
        tail = open(log, "rb").read().decode("utf-8", "replace").splitlines()[-15:]
        print("agent log:\n  " + "\n  ".join(tail), file=sys.stderr)
    global keep
    keep = True
    sys.exit(f"FAILED: {what} (work folder kept: {work})")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


STARTED = time.time()


def step(what):
    print(f"  [{time.time() - STARTED:6.1f} s] {what}", flush=True)


def wait_for(cond, what, timeout=60):
    step(f"waiting for {what}")
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        time.sleep(0.1)
    fail(f"timed out waiting for {what}")


# A hang shows where it is instead of eating the CI's time.
faulthandler.dump_traceback_later(420, exit=True)
work = tempfile.mkdtemp(prefix="vigil-watch-")
keep = False
env = dict(os.environ, VIGIL_BACKBONE=os.environ.get("VIGIL_BACKBONE", os.path.join(ROOT, ".venv/share/vigil/efficientnet-lite0-s8s16.pt")),
           VIGIL_TORCH_THREADS="1", RUST_LOG="info")
try:
    # A model, packaged and installed to start on boot.
    model = os.path.join(work, "model.vigil")
    subprocess.run([VIGIL, "train", IMAGES, "--out", model], env=env, check=True, capture_output=True)
    pkg, agent_dir = os.path.join(work, "pkg"), os.path.join(work, "agent")
    subprocess.run([VIGIL, "edge", "package", "--model", model, "--component", COMPONENT, "--out", pkg], env=env, check=True, capture_output=True)
    subprocess.run([VIGIL, "edge", "install", pkg, "--dir", agent_dir, "--start-on-boot"], env=env, check=True, capture_output=True)

    # A private Mosquitto that keeps sessions across restarts.
    port = free_port()
    conf = os.path.join(work, "mosquitto.conf")
    with open(conf, "w") as f:
        # As root, Mosquitto would switch to its own user, which cannot write its database into our folder.
        f.write(f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                f"persistence_location {work}/\nautosave_interval 1\n")
    mosquitto_bin = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

    def start_broker():
        p = subprocess.Popen([mosquitto_bin, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, "Mosquitto to listen", 20)
        return p

    broker = start_broker()

    # The subscriber: a persistent session (clean_session=False), QoS 1.
    received = []
    lock = threading.RLock()

    def on_message(_c, _u, msg):
        with lock:
            received.append(json.loads(msg.payload))

    def on_connect(c, _u, _f, _rc, _p=None):
        c.subscribe("vigil/results/#", qos=1)

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="vigil-watch-test", clean_session=False)
    sub.on_message = on_message
    sub.on_connect = on_connect
    sub.reconnect_delay_set(0.2, 1)
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    wait_for(lambda: sub.is_connected(), "the subscriber to connect", 20)
    time.sleep(0.3)

    # The webhook: refuses (503) until told to accept.
    hooked = []
    accepting = threading.Event()

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if not accepting.is_set():
                self.send_response(503)
                self.end_headers()
                return
            with lock:
                hooked.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass

    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()

    inbox = os.path.join(work, "inbox")
    os.makedirs(inbox)
    socket_path = os.path.join(work, "agent.sock")
    log = open(os.path.join(work, "agent.log"), "ab")

    def start_agent():
        p = subprocess.Popen([VIGIL, "edge", "serve", "--dir", agent_dir, "--socket", socket_path,
                              "--watch", f"{COMPONENT}={inbox}", "--mqtt", f"mqtt://127.0.0.1:{port}",
                              "--webhook", f"http://127.0.0.1:{hook.server_address[1]}/results"],
                             env=env, stdout=log, stderr=log)
        procs.append(p)
        return p

    agent = start_agent()
    sources = sorted(os.path.join(IMAGES, d, f) for d in ("normal", "anomaly") for f in os.listdir(os.path.join(IMAGES, d)))
    dropped = []

    def drop(n, tag):
        """Writes n images into the inbox the way a camera does: a temporary name, then a rename."""
        for i in range(n):
            src = sources[len(dropped) % len(sources)]
            name = f"{tag}-{i:03d}-{os.path.basename(src)}"
            tmp = os.path.join(inbox, name + ".part")
            shutil.copyfile(src, tmp)
            os.rename(tmp, os.path.join(inbox, name))
            dropped.append(name)

    def ids():
        with lock:
            return {m["MessageId"] for m in received}

    def files_by_id():
        with lock:
            return {m["MessageId"]: m["File"] for m in received}

    # 1. N in, N out, each moved as its verdict says.
    drop(8, "a")
    wait_for(lambda: len(ids()) == 8, "8 messages", 120)
    with lock:
        for m in received:
            where = "anomalous" if m["DetectAnomalyResult"]["IsAnomalous"] else "done"
            if m["Folder"] != where or not os.path.exists(os.path.join(inbox, where, m["File"])):
                fail(f"{m['File']} should be in {where}/")
    # A file still being written is not taken until it is complete.
    slow = os.path.join(inbox, "slow.jpg")
    data = open(sources[0], "rb").read()
    with open(slow, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        time.sleep(1.0)
        if not os.path.exists(slow):
            fail("a half-written file was taken")
        f.write(data[len(data) // 2:])
    dropped.append("slow.jpg")
    wait_for(lambda: len(ids()) == 9, "the slow file's message", 60)
    slow_msg = [m for m in received if m["File"] == "slow.jpg"][0]
    if "Error" in slow_msg["DetectAnomalyResult"]:
        fail("the slow file was read before it was complete")

    # 2. The broker down while images arrive; they are detected and moved, and published once it is back.
    broker.send_signal(signal.SIGTERM)
    broker.wait(10)
    drop(6, "b")
    wait_for(lambda: not any(n.startswith("b-") for n in os.listdir(inbox)), "the agent to take the files while the broker is down", 120)
    time.sleep(1.0)
    broker = start_broker()
    wait_for(lambda: len(ids()) == 15, "15 messages after the broker's restart", 120)

    # 3. The agent killed with SIGKILL mid-run; restarted, it brings the model up and loses nothing.
    drop(6, "c")
    time.sleep(0.5)
    agent.send_signal(signal.SIGKILL)
    agent.wait(10)
    drop(4, "d")
    agent = start_agent()
    wait_for(lambda: len(ids()) == 25, "25 messages after the agent's restart", 180)
    by_id = files_by_id()
    if sorted(by_id.values()) != sorted(dropped):
        fail(f"messages name other files than those dropped: {sorted(set(dropped) ^ set(by_id.values()))}")
    with lock:
        repeats = len(received) - len({m["MessageId"] for m in received})

    # 4. The webhook comes up: it gets every message too.
    accepting.set()
    wait_for(lambda: len({m["MessageId"] for m in hooked}) == 25, "the webhook to receive 25 messages", 120)
    wait_for(lambda: not os.listdir(os.path.join(agent_dir, "spool")) or
             all(n.startswith(".") for n in os.listdir(os.path.join(agent_dir, "spool"))), "the spool to empty", 60)
    left = [n for n in os.listdir(inbox) if n not in ("done", "anomalous", "invalid")]
    if left:
        fail(f"files left in the inbox: {left}")
    print(f"edge watch: {len(dropped)} images in, {len(ids())} distinct MQTT messages out ({repeats} repeats), "
          f"{len({m['MessageId'] for m in hooked})} webhook messages, through a broker restart and a SIGKILL")
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
