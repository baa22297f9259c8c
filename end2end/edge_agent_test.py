"""Vigil's edge agent, black box, through Python's grpcio: the client LFV's own edge samples use.

The gRPC client is generated from server/proto/edge-agent.proto at run time (into a temporary folder). The test
trains a model with `vigil train` on the cookies fixture once, packages and installs it with `vigil edge`,
serves it with `vigil edge serve` on a temporary Unix socket, and checks the five calls, inline and shared
memory bitmaps and masks, every error status, the engine's own answer (`vigil detect`) for the same images,
start on boot after SIGTERM and after `kill -9` (a stale socket file), and a burst beyond a small queue.

    .venv/bin/python end2end/edge_agent_test.py [--vigil target/debug/vigil] [--backbone FILE] [--work DIR]

Paths also come from VIGIL_BIN, VIGIL_BACKBONE and VIGIL_EDGE_TEST_DIR. Exits non-zero with a message on the
first failed check; every process it started is ended on exit. server/scripts/bench_edge.py imports the
helpers below.
"""
import argparse
import atexit
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing import shared_memory

import grpc
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "server", "tests", "fixtures", "cookies-small")
PROTO_DIR = os.path.join(ROOT, "server", "proto")
COMPONENT = "cookies.edge"
RPC_TIMEOUT = 120
# A mask of a 4096 × 4096 bitmap comes back inline as 48 MiB.
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


# ---------------------------------------------------------------------------------------------------------
# Helpers (also used by server/scripts/bench_edge.py)

_processes = []
_segments = []


def _cleanup():
    for p in _processes:
        if p.poll() is None:
            try:
                p.terminate()
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            except ProcessLookupError:
                pass
    for s in _segments:
        try:
            s.close()
            s.unlink()
        except (FileNotFoundError, BufferError, OSError):
            pass
    _segments.clear()


atexit.register(_cleanup)


def _on_signal(signum, _frame):
    _cleanup()
    sys.exit(128 + signum)


def install_signal_handlers():
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, _on_signal)


def load_stubs(out_dir):
    """Generates the Python gRPC client from the proto into `out_dir` and imports it."""
    from grpc_tools import protoc
    import grpc_tools

    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    os.makedirs(out_dir, exist_ok=True)
    rc = protoc.main(["protoc", f"-I{PROTO_DIR}", f"-I{include}", f"--python_out={out_dir}",
                      f"--grpc_python_out={out_dir}", os.path.join(PROTO_DIR, "edge-agent.proto")])
    if rc != 0:
        raise Failure(f"protoc could not compile {PROTO_DIR}/edge-agent.proto (exit {rc})")
    sys.path.insert(0, out_dir)
    import edge_agent_pb2
    import edge_agent_pb2_grpc
    return edge_agent_pb2, edge_agent_pb2_grpc


def vigil_env(backbone, torch_threads=None):
    env = dict(os.environ, VIGIL_BACKBONE=backbone)
    # One libtorch thread per process unless told otherwise: on a small machine shared with builds, libtorch
    # using every core slows to a crawl (seconds per image), and the agent and `vigil detect` compute alike.
    if torch_threads:
        env["VIGIL_TORCH_THREADS"] = str(torch_threads)
    elif torch_threads is None:
        env.setdefault("VIGIL_TORCH_THREADS", "1")
    else:
        env.pop("VIGIL_TORCH_THREADS", None)
    # The binary links libtorch from the venv's PyTorch (server/scripts/env.sh sets this; do it if it did not).
    libs = glob.glob(os.path.join(ROOT, ".venv", "lib", "python3*", "site-packages", "torch", "lib"))
    if libs and libs[0] not in env.get("LD_LIBRARY_PATH", "").split(":"):
        env["LD_LIBRARY_PATH"] = libs[0] + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    env.setdefault("RUST_LOG", "info")
    return env


def run_vigil(vigil, env, *args, timeout=600):
    """Runs a vigil command to completion; its stdout, or Failure with its stderr."""
    p = subprocess.run([vigil, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise Failure(f"`vigil {' '.join(args)}` exited {p.returncode}:\n{p.stderr[-3000:]}")
    return p.stdout


class AgentProcess:
    """One `vigil edge serve` process on a socket, with its log in a file."""

    def __init__(self, vigil, env, agent_dir, socket, log, extra=()):
        self.socket = socket
        self.log = log
        self.logf = open(log, "ab")
        self.proc = subprocess.Popen([vigil, "edge", "serve", "--dir", agent_dir, "--socket", socket, *extra],
                                     env=env, stdout=self.logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _processes.append(self.proc)
        self.channel = None

    @property
    def pid(self):
        return self.proc.pid

    def connect(self, pb2_grpc, wait=60):
        """Waits until the agent answers on its socket; returns a stub."""
        deadline = time.time() + wait
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise Failure(f"the agent exited {self.proc.returncode} before serving:\n{self.tail()}")
            if os.path.exists(self.socket) and b"listening on" in open(self.log, "rb").read():
                break
            time.sleep(0.05)
        else:
            raise Failure(f"the agent did not listen on {self.socket} within {wait} s:\n{self.tail()}")
        self.channel = grpc.insecure_channel(f"unix://{self.socket}", options=CHANNEL_OPTIONS)
        try:
            grpc.channel_ready_future(self.channel).result(timeout=max(1, deadline - time.time()))
        except grpc.FutureTimeoutError:
            raise Failure(f"no gRPC connection to unix://{self.socket}:\n{self.tail()}")
        return pb2_grpc.EdgeAgentStub(self.channel)

    def new_stub(self, pb2_grpc):
        """A stub on a connection of its own."""
        ch = grpc.insecure_channel(f"unix://{self.socket}", options=CHANNEL_OPTIONS)
        grpc.channel_ready_future(ch).result(timeout=30)
        return ch, pb2_grpc.EdgeAgentStub(ch)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise Failure(f"the agent did not stop within {timeout} s of signal {sig}:\n{self.tail()}")
        self.logf.close()
        return self.proc.returncode

    def tail(self, n=40):
        try:
            return "\n".join(open(self.log, errors="replace").read().splitlines()[-n:])
        except OSError:
            return ""


def segment(size):
    """A POSIX shared memory segment, removed on exit."""
    s = shared_memory.SharedMemory(create=True, size=size)
    _segments.append(s)
    return s


def release(s):
    if s in _segments:  # not yet removed by the clean-up on exit
        _segments.remove(s)
        s.close()
        s.unlink()


def wait_status(stub, pb2, component, want, timeout=120):
    """Polls DescribeModel until `want` (FAILED fails); returns the statuses seen, in order."""
    seen = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        d = stub.DescribeModel(pb2.DescribeModelRequest(model_component=component), timeout=RPC_TIMEOUT).model_description
        name = pb2.ModelStatus.Name(d.status)
        if not seen or seen[-1] != name:
            seen.append(name)
        if d.status == want:
            return seen
        if d.status == pb2.FAILED:
            raise Failure(f"{component} is FAILED: {d.status_message}")
        time.sleep(0.02)
    raise Failure(f"{component} did not become {pb2.ModelStatus.Name(want)} within {timeout} s (saw {seen})")


def rgb_of(path):
    im = Image.open(path).convert("RGB")
    return im.width, im.height, im.tobytes()


def inline_request(pb2, component, w, h, data, mask_into=None):
    r = pb2.DetectAnomaliesRequest(model_component=component,
                                   bitmap=pb2.Bitmap(width=w, height=h, byte_data=data))
    if mask_into is not None:
        r.anomaly_mask_params.shared_memory_handle.CopyFrom(mask_into)
    return r


def shm_request(pb2, component, w, h, handle, mask_into=None):
    r = pb2.DetectAnomaliesRequest(model_component=component,
                                   bitmap=pb2.Bitmap(width=w, height=h, shared_memory_handle=handle))
    if mask_into is not None:
        r.anomaly_mask_params.shared_memory_handle.CopyFrom(mask_into)
    return r


def status_code(fn, request):
    try:
        fn(request, timeout=RPC_TIMEOUT)
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def prepare_model(vigil, env, work, component=COMPONENT):
    """Trains on the cookies fixture and packages the model; returns (model file, package folder)."""
    model = os.path.join(work, "model.vigil")
    run_vigil(vigil, env, "train", FIXTURE, "--out", model)
    pkg = os.path.join(work, "pkg-" + component)
    run_vigil(vigil, env, "edge", "package", "--model", model, "--component", component, "--out", pkg)
    return model, pkg


def fixture_images():
    return sorted(glob.glob(os.path.join(FIXTURE, "anomaly", "*.jpg"))) + \
        sorted(glob.glob(os.path.join(FIXTURE, "normal", "*.jpg")))


# ---------------------------------------------------------------------------------------------------------
# The test

class Test:
    def __init__(self, vigil, backbone, work):
        self.vigil, self.work = vigil, work
        self.env = vigil_env(backbone)
        self.checks = 0
        self.step_name = ""
        self.t0 = time.time()

    def step(self, name):
        self.step_name = name
        print(f"  [{time.time() - self.t0:5.1f} s] {name}", flush=True)

    def check(self, cond, what):
        if not cond:
            raise Failure(f"[{self.step_name}] {what}")
        self.checks += 1

    def expect_code(self, want, fn, request, what):
        got = status_code(fn, request)
        self.check(got == want, f"{what}: expected {want.name}, got {got.name}")

    def run(self):
        pb2, pb2_grpc = load_stubs(os.path.join(self.work, "stubs"))
        self.pb2, self.pb2_grpc = pb2, pb2_grpc
        started = time.time()

        self.step("vigil train, vigil edge package, vigil edge install")
        model, pkg = prepare_model(self.vigil, self.env, self.work)
        agent_dir = os.path.join(self.work, "agent")
        run_vigil(self.vigil, self.env, "edge", "install", pkg, "--dir", agent_dir)
        listed = run_vigil(self.vigil, self.env, "edge", "list", "--dir", agent_dir)
        self.check(listed.startswith(COMPONENT + "\t") and "start-on-boot" not in listed, f"vigil edge list: {listed!r}")

        # The engine's own answers: each fixture image decoded once (PIL) and written losslessly as PNG, so
        # `vigil detect` and the agent see the very same pixels.
        self.step("vigil detect --mask-dir on the fixture images (the engine's answers)")
        img_dir, mask_dir = os.path.join(self.work, "images"), os.path.join(self.work, "masks")
        os.makedirs(img_dir, exist_ok=True)
        images = []
        for src in fixture_images():
            dst = os.path.join(img_dir, os.path.splitext(os.path.basename(src))[0] + ".png")
            Image.open(src).convert("RGB").save(dst)
            images.append(dst)
        self.check(len(images) >= 10, f"fixture images found: {len(images)}")
        out = run_vigil(self.vigil, self.env, "detect", "--model", model, "--mask-dir", mask_dir, *images)
        expected = {}
        for line in out.splitlines():
            j = json.loads(line)
            expected[j["Image"]] = j["DetectAnomalyResult"]
        self.check(sorted(expected) == sorted(images), "vigil detect answered for every image")
        self.check(any(e["IsAnomalous"] for e in expected.values()) and not all(e["IsAnomalous"] for e in expected.values()),
                   "the model finds some images anomalous and some normal")

        # A short path: a Unix socket's path is limited to 107 bytes.
        sock_dir = tempfile.mkdtemp(prefix="vigil-edge-sock-")
        atexit.register(lambda: __import__("shutil").rmtree(sock_dir, ignore_errors=True))
        socket = os.path.join(sock_dir, "agent.sock")
        log = os.path.join(self.work, "agent.log")
        self.step(f"vigil edge serve on unix://{socket}")
        agent = AgentProcess(self.vigil, self.env, agent_dir, socket, log)
        self.agent = agent
        stub = agent.connect(pb2_grpc)

        self.step("ListModels, DescribeModel: STOPPED")
        models = stub.ListModels(pb2.ListModelsRequest(), timeout=RPC_TIMEOUT).models
        self.check([m.model_component for m in models] == [COMPONENT], f"ListModels: {[m.model_component for m in models]}")
        self.check(models[0].status == pb2.STOPPED, f"ListModels status {pb2.ModelStatus.Name(models[0].status)}")
        self.check(models[0].lookout_vision_model_arn != "", "ListModels has the model ARN")
        d = stub.DescribeModel(pb2.DescribeModelRequest(model_component=COMPONENT), timeout=RPC_TIMEOUT).model_description
        self.check(d.model_component == COMPONENT and d.status == pb2.STOPPED, f"DescribeModel: {d}")
        self.check(d.lookout_vision_model_arn == models[0].lookout_vision_model_arn, "the same ARN in both")
        self.expect_code(grpc.StatusCode.NOT_FOUND, stub.DescribeModel,
                         pb2.DescribeModelRequest(model_component="no.such.component"), "DescribeModel of an unknown component")

        first = images[0]
        w, h, data = rgb_of(first)
        self.step("DetectAnomalies before StartModel: FAILED_PRECONDITION")
        self.expect_code(grpc.StatusCode.FAILED_PRECONDITION, stub.DetectAnomalies,
                         inline_request(pb2, COMPONENT, w, h, data), "DetectAnomalies on a STOPPED model")
        self.expect_code(grpc.StatusCode.FAILED_PRECONDITION, stub.StopModel,
                         pb2.StopModelRequest(model_component=COMPONENT), "StopModel on a STOPPED model")

        self.step("StartModel: STARTING, then RUNNING")
        r = stub.StartModel(pb2.StartModelRequest(model_component=COMPONENT), timeout=RPC_TIMEOUT)
        self.check(r.status == pb2.STARTING, f"StartModel answered {pb2.ModelStatus.Name(r.status)}, not STARTING")
        seen = wait_status(stub, pb2, COMPONENT, pb2.RUNNING)
        self.check(set(seen) <= {"STARTING", "RUNNING"}, f"statuses while starting: {seen}")
        self.expect_code(grpc.StatusCode.FAILED_PRECONDITION, stub.StartModel,
                         pb2.StartModelRequest(model_component=COMPONENT), "StartModel on a RUNNING model")
        self.expect_code(grpc.StatusCode.NOT_FOUND, stub.StartModel,
                         pb2.StartModelRequest(model_component="no.such.component"), "StartModel of an unknown component")

        self.step(f"DetectAnomalies inline and through shared memory on {len(images)} images, equal to vigil detect")
        for path in images:
            self.detect_and_compare(stub, path, expected[path], os.path.join(mask_dir, os.path.basename(path)))

        self.step("error statuses")
        self.error_cases(stub, w, h, data)

        self.step("StopModel: STOPPED, then DetectAnomalies: FAILED_PRECONDITION")
        r = stub.StopModel(pb2.StopModelRequest(model_component=COMPONENT), timeout=RPC_TIMEOUT)
        self.check(r.status == pb2.STOPPED, f"StopModel answered {pb2.ModelStatus.Name(r.status)}")
        d = stub.DescribeModel(pb2.DescribeModelRequest(model_component=COMPONENT), timeout=RPC_TIMEOUT).model_description
        self.check(d.status == pb2.STOPPED, f"DescribeModel after StopModel: {pb2.ModelStatus.Name(d.status)}")
        self.expect_code(grpc.StatusCode.FAILED_PRECONDITION, stub.DetectAnomalies,
                         inline_request(pb2, COMPONENT, w, h, data), "DetectAnomalies after StopModel")

        self.step("SIGTERM; install --start-on-boot; start again: RUNNING without StartModel")
        rc = agent.stop(signal.SIGTERM)
        self.check(rc == 0, f"the agent exited {rc} on SIGTERM:\n{agent.tail()}")
        self.check(not os.path.exists(socket), "the agent removed its socket file on SIGTERM")
        run_vigil(self.vigil, self.env, "edge", "install", pkg, "--dir", agent_dir, "--start-on-boot")
        listed = run_vigil(self.vigil, self.env, "edge", "list", "--dir", agent_dir)
        self.check("start-on-boot" in listed, f"vigil edge list after --start-on-boot: {listed!r}")
        agent = self.agent = AgentProcess(self.vigil, self.env, agent_dir, socket, log)
        stub = agent.connect(pb2_grpc)
        wait_status(stub, pb2, COMPONENT, pb2.RUNNING)
        self.detect_and_compare(stub, first, expected[first], os.path.join(mask_dir, os.path.basename(first)), shm=False)

        self.step("kill -9 (the socket file stays); start again: RUNNING, answers")
        agent.stop(signal.SIGKILL)
        self.check(os.path.exists(socket), "kill -9 leaves the socket file behind")
        agent = self.agent = AgentProcess(self.vigil, self.env, agent_dir, socket, log)
        stub = agent.connect(pb2_grpc)
        wait_status(stub, pb2, COMPONENT, pb2.RUNNING)
        self.detect_and_compare(stub, first, expected[first], os.path.join(mask_dir, os.path.basename(first)), shm=False)
        agent.stop(signal.SIGTERM)

        self.step("a burst of 16 concurrent DetectAnomalies on --units 1 --queue 1: OK or RESOURCE_EXHAUSTED")
        agent = self.agent = AgentProcess(self.vigil, self.env, agent_dir, socket, log, ["--units", "1", "--queue", "1"])
        stub = agent.connect(pb2_grpc)
        wait_status(stub, pb2, COMPONENT, pb2.RUNNING)
        codes = self.burst(agent, 16, inline_request(pb2, COMPONENT, w, h, data))
        counts = {c.name: codes.count(c) for c in set(codes)}
        self.check(set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, f"burst answers: {counts}")
        self.check(grpc.StatusCode.OK in codes and grpc.StatusCode.RESOURCE_EXHAUSTED in codes,
                   f"burst: at least one OK and one RESOURCE_EXHAUSTED: {counts}")
        # The agent still answers after the burst.
        self.detect_and_compare(stub, first, expected[first], os.path.join(mask_dir, os.path.basename(first)), shm=False)
        rc = agent.stop(signal.SIGTERM)
        self.check(rc == 0, f"the agent exited {rc} on SIGTERM")

        print(f"edge agent (grpcio {grpc.__version__}): {self.checks} checks passed on {len(images)} images "
              f"in {time.time() - started:.1f} s (burst: {counts})", flush=True)

    def detect_and_compare(self, stub, path, want, mask_png, shm=True):
        pb2 = self.pb2
        name = os.path.basename(path)
        w, h, data = rgb_of(path)
        r = stub.DetectAnomalies(inline_request(pb2, COMPONENT, w, h, data), timeout=RPC_TIMEOUT).detect_anomaly_result
        self.compare(r, want, name)
        self.check(r.anomaly_mask.width == w and r.anomaly_mask.height == h,
                   f"{name}: mask {r.anomaly_mask.width}×{r.anomaly_mask.height}, image {w}×{h}")
        self.check(r.anomaly_mask.WhichOneof("data") == "byte_data", f"{name}: the mask comes back inline")
        check_mask = Image.open(mask_png).convert("RGB").tobytes()
        self.check(r.anomaly_mask.byte_data == check_mask, f"{name}: the inline mask equals vigil detect's mask PNG")
        if not shm:
            return
        n = w * h * 3
        offset_in, offset_out = 4096 + 123, 77
        seg_in, seg_out = segment(offset_in + n + 64), segment(offset_out + n)
        try:
            seg_in.buf[offset_in:offset_in + n] = data
            handle_in = pb2.SharedMemoryHandle(name=seg_in.name, size=n, offset=offset_in)
            handle_out = pb2.SharedMemoryHandle(name=seg_out.name, size=n, offset=offset_out)
            s = stub.DetectAnomalies(shm_request(pb2, COMPONENT, w, h, handle_in, handle_out),
                                     timeout=RPC_TIMEOUT).detect_anomaly_result
            self.check(s.is_anomalous == r.is_anomalous and s.confidence == r.confidence,
                       f"{name}: shared memory verdict {s.is_anomalous}/{s.confidence}, inline {r.is_anomalous}/{r.confidence}")
            self.check(list(s.anomalies) == list(r.anomalies), f"{name}: the same anomalies through shared memory")
            m = s.anomaly_mask
            self.check(m.WhichOneof("data") == "shared_memory_handle", f"{name}: the mask is written to shared memory")
            self.check((m.width, m.height) == (w, h), f"{name}: shared memory mask size")
            mh = m.shared_memory_handle
            self.check(mh.name.lstrip("/") == seg_out.name.lstrip("/") and mh.offset == offset_out and mh.size == n,
                       f"{name}: the answer names the caller's segment: {mh}")
            self.check(bytes(seg_out.buf[offset_out:offset_out + n]) == r.anomaly_mask.byte_data,
                       f"{name}: the mask in shared memory equals the inline one")
            self.check(bytes(seg_out.buf[:offset_out]) == bytes(offset_out), f"{name}: nothing written before the offset")
            # The input at the offset, and the mask inline, from shared memory too.
            s2 = stub.DetectAnomalies(shm_request(pb2, COMPONENT, w, h, handle_in), timeout=RPC_TIMEOUT).detect_anomaly_result
            self.check(s2.anomaly_mask.byte_data == r.anomaly_mask.byte_data and s2.confidence == r.confidence,
                       f"{name}: shared memory input with an inline mask")
        finally:
            release(seg_in)
            release(seg_out)

    def compare(self, r, want, name):
        self.check(r.is_anomalous == want["IsAnomalous"], f"{name}: is_anomalous {r.is_anomalous}, vigil detect {want['IsAnomalous']}")
        self.check(abs(r.confidence - want["Confidence"]) <= 1e-5, f"{name}: confidence {r.confidence}, vigil detect {want['Confidence']}")
        got = [(a.name, a.pixel_anomaly.total_percentage_area, a.pixel_anomaly.hex_color) for a in r.anomalies]
        exp = [(a["Name"], a["PixelAnomaly"]["TotalPercentageArea"], a["PixelAnomaly"]["Color"]) for a in want.get("Anomalies") or []]
        self.check([g[0] for g in got] == [e[0] for e in exp], f"{name}: anomalies {got}, vigil detect {exp}")
        self.check(all(abs(g[1] - e[1]) <= 1e-6 for g, e in zip(got, exp)), f"{name}: areas {got}, vigil detect {exp}")
        self.check(all(g[2].upper() == e[2].upper() for g, e in zip(got, exp)), f"{name}: colours {got}, vigil detect {exp}")
        self.check(bool(got) and got[0][0] == "background", f"{name}: background first: {got}")

    def error_cases(self, stub, w, h, data):
        pb2, D = self.pb2, stub.DetectAnomalies
        INVALID = grpc.StatusCode.INVALID_ARGUMENT
        self.expect_code(INVALID, D, inline_request(pb2, COMPONENT, w, h, data[:-1]), "one byte short")
        self.expect_code(INVALID, D, inline_request(pb2, COMPONENT, w, h, data + b"\0"), "one byte too many")
        self.expect_code(INVALID, D, inline_request(pb2, COMPONENT, w, h, b""), "no bytes")
        self.expect_code(INVALID, D, inline_request(pb2, COMPONENT, 63, 64, bytes(63 * 64 * 3)), "width 63")
        self.expect_code(INVALID, D, inline_request(pb2, COMPONENT, 64, 63, bytes(64 * 63 * 3)), "height 63")
        self.expect_code(INVALID, D, inline_request(pb2, COMPONENT, 4097, 64, bytes(4097 * 64 * 3)), "width 4097")
        self.expect_code(INVALID, D, inline_request(pb2, COMPONENT, 64, 4097, bytes(64 * 4097 * 3)), "height 4097")
        self.expect_code(INVALID, D, inline_request(pb2, COMPONENT, 0, 0, b""), "0×0")
        self.expect_code(INVALID, D, inline_request(pb2, COMPONENT, -64, -64, b""), "negative sides")
        self.expect_code(INVALID, D, pb2.DetectAnomaliesRequest(model_component=COMPONENT), "no bitmap")
        self.expect_code(INVALID, D, pb2.DetectAnomaliesRequest(model_component=COMPONENT, bitmap=pb2.Bitmap(width=w, height=h)),
                         "a bitmap with neither bytes nor shared memory")
        self.expect_code(grpc.StatusCode.NOT_FOUND, D, inline_request(pb2, "no.such.component", w, h, data), "unknown component")
        self.expect_code(INVALID, D, inline_request(pb2, "bad/name", w, h, data), "a component name with a slash")
        n = w * h * 3
        missing = pb2.SharedMemoryHandle(name=f"vigil-no-such-segment-{os.getpid()}", size=n, offset=0)
        self.expect_code(INVALID, D, shm_request(pb2, COMPONENT, w, h, missing), "a shared memory name that does not exist")
        self.expect_code(INVALID, D, shm_request(pb2, COMPONENT, w, h, pb2.SharedMemoryHandle(name="../../etc/passwd", size=n)),
                         "a shared memory name with a path")
        seg = segment(n + 10)
        try:
            seg.buf[10:10 + n] = data
            self.expect_code(INVALID, D, shm_request(pb2, COMPONENT, w, h, pb2.SharedMemoryHandle(name=seg.name, size=n - 1, offset=10)),
                             "a shared memory handle one byte short")
            self.expect_code(INVALID, D, shm_request(pb2, COMPONENT, w, h, pb2.SharedMemoryHandle(name=seg.name, size=n, offset=11)),
                             "a bitmap reaching beyond the segment's end")
            ok = pb2.SharedMemoryHandle(name=seg.name, size=n, offset=10)
            small = segment(n // 2)
            try:
                self.expect_code(INVALID, D, shm_request(pb2, COMPONENT, w, h, ok, pb2.SharedMemoryHandle(name=small.name, size=n)),
                                 "a mask segment too small for the mask")
            finally:
                release(small)
            self.expect_code(grpc.StatusCode.OK, D, shm_request(pb2, COMPONENT, w, h, ok), "the same handle, right")
        finally:
            release(seg)
        # The agent answers as before after the refusals.
        self.expect_code(grpc.StatusCode.OK, D, inline_request(pb2, COMPONENT, w, h, data), "a good request after the refusals")

    def burst(self, agent, n, request):
        """`n` DetectAnomalies at once, each thread on a connection of its own; their status codes."""
        stubs = [agent.new_stub(self.pb2_grpc) for _ in range(n)]
        barrier = threading.Barrier(n)
        codes = [None] * n

        def one(i):
            barrier.wait()
            codes[i] = status_code(stubs[i][1].DetectAnomalies, request)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for ch, _ in stubs:
            ch.close()
        return codes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vigil", default=os.environ.get("VIGIL_BIN", os.path.join(ROOT, "target", "debug", "vigil")))
    ap.add_argument("--backbone", default=os.environ.get("VIGIL_BACKBONE", os.path.join(ROOT, ".venv", "share", "vigil", "efficientnet-lite0-s8s16.pt")))
    ap.add_argument("--work", default=os.environ.get("VIGIL_EDGE_TEST_DIR"), help="work folder (default: a temporary one, removed after a pass)")
    a = ap.parse_args()
    install_signal_handlers()
    for what, p in (("vigil binary", a.vigil), ("backbone", a.backbone)):
        if not os.path.isfile(p):
            sys.exit(f"FAILED: the {what} {p} does not exist")
    temp = a.work is None
    work = tempfile.mkdtemp(prefix="vigil-edge-test-") if temp else os.path.abspath(a.work)
    os.makedirs(work, exist_ok=True)
    print(f"edge agent test in {work}", flush=True)
    t = Test(os.path.abspath(a.vigil), os.path.abspath(a.backbone), work)
    try:
        t.run()
    except Failure as e:
        msg = f"FAILED: {e}"
        agent = getattr(t, "agent", None)
        if agent is not None:
            msg += f"\n--- agent log ({agent.log}), last lines:\n{agent.tail()}"
        print(msg, file=sys.stderr, flush=True)
        _cleanup()
        sys.exit(1)
    except grpc.RpcError as e:
        print(f"FAILED: [{t.step_name}] unexpected gRPC error {e.code().name}: {e.details()}", file=sys.stderr, flush=True)
        _cleanup()
        sys.exit(1)
    _cleanup()
    if temp:
        import shutil
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
