"""Benchmark of Vigil's edge agent through Python's grpcio (a benchmark, not a test: it prints figures).

    source server/scripts/env.sh
    .venv/bin/python server/scripts/bench_edge.py [--vigil target/debug/vigil] [--calls 200] [--json FILE]

Trains a model on the cookies fixture (`vigil train`), packages it and installs it under three component names,
serves it with `vigil edge serve` on a temporary Unix socket, and measures:
- DetectAnomalies latency p50 / p99 (after a warm-up), bitmap inline and through shared memory (the frame copied
  into the segment inside the timed call, the mask written into a second segment), on a cookies image and on a
  large circuitboard image (/work/shared/datasets/lfv-circuitboard, 2000 × 1334) when present;
- the engine's own time per image for the same model and image: `vigil detect` over N copies minus one copy
  (its start-up), per image (this includes decoding the JPEG, which the agent's callers do themselves);
- images per second with 1 and 2 concurrent clients (agent with --units 1 and --units 2);
- the agent's RSS (VmRSS) with 0, 1 and 3 models running; time from StartModel to RUNNING; package size.
Optionally the server's HTTP DetectAnomalies (boto3) for comparison: --server-url with --access-key,
--secret-key, --project and --model-version (a hosted model version); skipped by default.
"""
import argparse
import glob
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time

import grpc
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "end2end"))
import edge_agent_test as E  # noqa: E402  (the test's helpers: stubs, agent processes, segments)

COMPONENTS = ["cookies.edge", "cookies.edge.b", "cookies.edge.c"]
CIRCUITBOARD = "/work/shared/datasets/lfv-circuitboard"


def pct(xs, q):
    xs = sorted(xs)
    i = min(len(xs) - 1, max(0, int(round(q / 100 * (len(xs) - 1)))))
    return xs[i]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def dir_bytes(d):
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(d, "**"), recursive=True) if os.path.isfile(p))


def large_image():
    if not os.path.isdir(CIRCUITBOARD):
        return None
    for p in sorted(glob.glob(os.path.join(CIRCUITBOARD, "**", "*.jpg"), recursive=True)):
        if Image.open(p).size == (2000, 1334):
            return p
    return None


class Bench:
    def __init__(self, a):
        self.a = a
        self.vigil = os.path.abspath(a.vigil)
        self.env = E.vigil_env(os.path.abspath(a.backbone), a.torch_threads)
        self.work = tempfile.mkdtemp(prefix="vigil-bench-edge-")
        self.sock_dir = tempfile.mkdtemp(prefix="vigil-bench-sock-")
        threads = self.env.get("VIGIL_TORCH_THREADS", "all cores")
        self.figures = {"vigil": self.vigil, "host": platform.node(), "cpus": os.cpu_count(), "calls": a.calls,
                        "torch_threads": threads, "load_average_at_start": os.getloadavg()}

    def agent(self, name, extra=()):
        return E.AgentProcess(self.vigil, self.env, self.agent_dir, os.path.join(self.sock_dir, name + ".sock"),
                              os.path.join(self.work, name + ".log"), extra)

    def start(self, stub, component):
        t = time.perf_counter()
        stub.StartModel(self.pb2.StartModelRequest(model_component=component), timeout=E.RPC_TIMEOUT)
        E.wait_status(stub, self.pb2, component, self.pb2.RUNNING)
        return time.perf_counter() - t

    def run(self):
        a = self.a
        self.pb2, self.pb2_grpc = E.load_stubs(os.path.join(self.work, "stubs"))
        pb2 = self.pb2
        print(f"edge agent benchmark ({self.vigil}; work folder {self.work})", flush=True)
        model, pkg = E.prepare_model(self.vigil, self.env, self.work, COMPONENTS[0])
        self.agent_dir = os.path.join(self.work, "agent")
        pkgs = [pkg]
        for c in COMPONENTS[1:]:
            p = os.path.join(self.work, "pkg-" + c)
            E.run_vigil(self.vigil, self.env, "edge", "package", "--model", model, "--component", c, "--out", p)
            pkgs.append(p)
        for p in pkgs:
            E.run_vigil(self.vigil, self.env, "edge", "install", p, "--dir", self.agent_dir)
        self.figures["package_bytes"] = dir_bytes(pkg)
        self.figures["model_file_bytes"] = os.path.getsize(model)
        self.figures["installed_component_bytes"] = dir_bytes(os.path.join(self.agent_dir, "models", COMPONENTS[0]))

        images = {"cookies": E.fixture_images()[0]}
        big = large_image()
        if big:
            images["circuitboard"] = big
        else:
            print(f"  ({CIRCUITBOARD} not found: the large image is skipped)")

        print("\nlatency (agent: --units 1 --queue 8)", flush=True)
        ag = self.agent("main")
        stub = ag.connect(self.pb2_grpc)
        time.sleep(0.5)
        self.figures["rss_kib_0_models"] = rss_kib(ag.pid)
        starts = [self.start(stub, COMPONENTS[0])]
        lat = {}
        for key, path in images.items():
            w, h, data = E.rgb_of(path)
            lat[key] = {"width": w, "height": h}
            lat[key]["inline_ms"] = self.latency(stub, w, h, data, shm=False)
            lat[key]["shm_ms"] = self.latency(stub, w, h, data, shm=True)
        self.figures["rss_kib_1_model"] = rss_kib(ag.pid)
        for c in COMPONENTS[1:]:
            starts.append(self.start(stub, c))
            w, h, data = E.rgb_of(images["cookies"])
            stub.DetectAnomalies(E.inline_request(pb2, c, w, h, data), timeout=E.RPC_TIMEOUT)
        self.figures["rss_kib_3_models"] = rss_kib(ag.pid)
        # StartModel → RUNNING again a few times on a model that was stopped.
        for _ in range(3):
            stub.StopModel(pb2.StopModelRequest(model_component=COMPONENTS[2]), timeout=E.RPC_TIMEOUT)
            starts.append(self.start(stub, COMPONENTS[2]))
        self.figures["start_to_running_ms"] = {"first": starts[0] * 1e3, "median": statistics.median(starts) * 1e3,
                                               "max": max(starts) * 1e3, "n": len(starts)}
        ag.stop()
        self.figures["latency"] = lat

        print("\nthe engine's own time (vigil detect over N copies minus one copy)", flush=True)
        eng = {}
        for key, path in images.items():
            eng[key] = self.engine_time(model, path, 21 if key == "cookies" else 11)
        self.figures["engine_detect_ms"] = eng

        print("\nthroughput, cookies image inline", flush=True)
        tp = {}
        w, h, data = E.rgb_of(images["cookies"])
        for units in (1, 2):
            ag = self.agent(f"units{units}", ["--units", str(units)])
            stub = ag.connect(self.pb2_grpc)
            self.start(stub, COMPONENTS[0])
            for clients in (1, 2):
                tp[f"units{units}_clients{clients}"] = self.throughput(ag, clients, w, h, data, a.throughput_s)
            ag.stop()
        self.figures["images_per_s"] = tp

        if a.server_url:
            print("\nthe server's HTTP DetectAnomalies (boto3)", flush=True)
            self.figures["server_http_ms"] = {k: self.server_latency(p) for k, p in images.items()}

        self.report()
        if a.json:
            with open(a.json, "w") as f:
                json.dump(self.figures, f, indent=2)
            print(f"figures written to {a.json}")

    def latency(self, stub, w, h, data, shm):
        pb2, n = self.pb2, w * h * 3
        if shm:
            seg_in, seg_out = E.segment(n), E.segment(n)
            req = E.shm_request(pb2, COMPONENTS[0], w, h, pb2.SharedMemoryHandle(name=seg_in.name, size=n),
                                pb2.SharedMemoryHandle(name=seg_out.name, size=n))
        else:
            req = E.inline_request(pb2, COMPONENTS[0], w, h, data)

        def call():
            if shm:
                seg_in.buf[:n] = data
            return stub.DetectAnomalies(req, timeout=E.RPC_TIMEOUT)

        for _ in range(self.a.warmup):
            call()
        times = []
        for _ in range(self.a.calls):
            t = time.perf_counter()
            call()
            times.append((time.perf_counter() - t) * 1e3)
        if shm:
            E.release(seg_in)
            E.release(seg_out)
        out = {"p50": pct(times, 50), "p99": pct(times, 99), "mean": statistics.mean(times), "n": len(times)}
        print(f"  {w}×{h} {'shared memory' if shm else 'inline':<13} p50 {out['p50']:8.1f} ms  p99 {out['p99']:8.1f} ms", flush=True)
        return out

    def engine_time(self, model, path, n):
        d = os.path.join(self.work, "engine-" + os.path.basename(path))
        os.makedirs(d, exist_ok=True)
        ext = os.path.splitext(path)[1]
        copies = []
        for i in range(n):
            c = os.path.join(d, f"img-{i}{ext}")
            shutil.copyfile(path, c)
            copies.append(c)

        def timed(files):
            best = None
            for _ in range(3):
                t = time.perf_counter()
                E.run_vigil(self.vigil, self.env, "detect", "--model", model, *files)
                dt = time.perf_counter() - t
                best = dt if best is None else min(best, dt)
            return best

        one, many = timed(copies[:1]), timed(copies)
        per = (many - one) / (n - 1) * 1e3
        print(f"  {os.path.basename(path)}: 1 image {one * 1e3:.0f} ms, {n} images {many * 1e3:.0f} ms → {per:.1f} ms per image", flush=True)
        return {"per_image": per, "one_image_run_ms": one * 1e3, "n_images_run_ms": many * 1e3, "n": n}

    def throughput(self, ag, clients, w, h, data, seconds):
        stubs = [ag.new_stub(self.pb2_grpc) for _ in range(clients)]
        req = E.inline_request(self.pb2, COMPONENTS[0], w, h, data)
        for _, s in stubs:
            s.DetectAnomalies(req, timeout=E.RPC_TIMEOUT)
        counts, errors = [0] * clients, []
        barrier = threading.Barrier(clients + 1)
        stop_at = [0.0]

        def loop(i):
            barrier.wait()
            while time.perf_counter() < stop_at[0]:
                try:
                    stubs[i][1].DetectAnomalies(req, timeout=E.RPC_TIMEOUT)
                    counts[i] += 1
                except grpc.RpcError as e:
                    errors.append(e.code().name)

        threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        stop_at[0] = time.perf_counter() + seconds
        t0 = time.perf_counter()
        barrier.wait()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        for ch, _ in stubs:
            ch.close()
        ips = sum(counts) / elapsed
        print(f"  --units {ag.proc.args[ag.proc.args.index('--units') + 1]}, {clients} client(s): {ips:.1f} images/s"
              + (f" ({len(errors)} errors: {sorted(set(errors))})" if errors else ""), flush=True)
        return {"images_per_s": ips, "images": sum(counts), "seconds": elapsed, "errors": len(errors)}

    def server_latency(self, path):
        import boto3
        a = self.a
        lfv = boto3.client("lookoutvision", endpoint_url=a.server_url, region_name="us-east-1",
                           aws_access_key_id=a.access_key, aws_secret_access_key=a.secret_key)
        body = open(path, "rb").read()
        kind = "image/png" if path.endswith(".png") else "image/jpeg"

        def call():
            lfv.detect_anomalies(ProjectName=a.project, ModelVersion=a.model_version, Body=body, ContentType=kind)

        for _ in range(self.a.warmup):
            call()
        times = []
        for _ in range(self.a.calls):
            t = time.perf_counter()
            call()
            times.append((time.perf_counter() - t) * 1e3)
        out = {"p50": pct(times, 50), "p99": pct(times, 99), "n": len(times)}
        print(f"  {os.path.basename(path)}: p50 {out['p50']:.1f} ms  p99 {out['p99']:.1f} ms", flush=True)
        return out

    def report(self):
        f = self.figures
        print("\n" + "=" * 86)
        print(f"Vigil edge agent benchmark — {f['vigil']} on {f['cpus']} CPUs, libtorch threads: {f['torch_threads']},")
        print(f"{f['calls']} calls per latency figure; load average at start {f['load_average_at_start'][0]:.2f}")
        print("=" * 86)
        print(f"{'DetectAnomalies through the agent (ms)':<44}{'p50':>10}{'p99':>10}{'engine/img':>12}{'overhead':>10}")
        for key, l in f["latency"].items():
            eng = f["engine_detect_ms"][key]["per_image"]
            for mode in ("inline", "shm"):
                x = l[f"{mode}_ms"]
                label = f"{key} {l['width']}×{l['height']} {'inline' if mode == 'inline' else 'shared memory'}"
                print(f"  {label:<42}{x['p50']:>10.1f}{x['p99']:>10.1f}{eng:>12.1f}{x['p50'] - eng:>10.1f}")
            if "server_http_ms" in f:
                s = f["server_http_ms"][key]
                print(f"  {key + ' server HTTP (boto3)':<42}{s['p50']:>10.1f}{s['p99']:>10.1f}")
        print("  (engine/img: `vigil detect` per image, decoding the JPEG included, which the agent's callers do")
        print("   themselves; overhead: agent p50 − engine/img, negative where decoding outweighs the transport)")
        print(f"{'Throughput (cookies, inline)':<44}{'images/s':>10}")
        for k, v in f["images_per_s"].items():
            units, clients = k.replace("units", "").split("_clients")
            print(f"  {'--units ' + units + ', ' + clients + ' client(s)':<42}{v['images_per_s']:>10.1f}")
        print(f"{'Agent RSS (VmRSS)':<44}{'MiB':>10}")
        for k, label in (("rss_kib_0_models", "0 models running"), ("rss_kib_1_model", "1 model running"),
                         ("rss_kib_3_models", "3 models running")):
            print(f"  {label:<42}{f[k] / 1024:>10.1f}")
        s = f["start_to_running_ms"]
        print(f"{'StartModel → RUNNING (ms)':<44}{'first':>10}{'median':>10}{'max':>12}")
        print(f"  {str(s['n']) + ' starts':<42}{s['first']:>10.0f}{s['median']:>10.0f}{s['max']:>12.0f}")
        print(f"{'Package on disk':<44}{'KiB':>10}")
        print(f"  {'package folder (model, manifest, recipes)':<42}{f['package_bytes'] / 1024:>10.1f}")
        print(f"  {'of which the model file':<42}{f['model_file_bytes'] / 1024:>10.1f}")
        print(f"  {'installed component folder':<42}{f['installed_component_bytes'] / 1024:>10.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vigil", default=os.environ.get("VIGIL_BIN", os.path.join(ROOT, "target", "debug", "vigil")))
    ap.add_argument("--backbone", default=os.environ.get("VIGIL_BACKBONE", os.path.join(ROOT, ".venv", "share", "vigil", "efficientnet-lite0-s8s16.pt")))
    ap.add_argument("--calls", type=int, default=200, help="timed calls per latency figure")
    ap.add_argument("--warmup", type=int, default=10, help="untimed calls first")
    ap.add_argument("--throughput-s", type=float, default=10.0, help="seconds per throughput figure")
    ap.add_argument("--torch-threads", type=int, default=1,
                    help="libtorch threads of the agent and of vigil detect (0: every core, the agent's default)")
    ap.add_argument("--json", help="also write the figures as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--server-url", help="also time the server's HTTP DetectAnomalies (boto3) at this URL")
    ap.add_argument("--access-key", default=os.environ.get("VIGIL_E2E_ACCESS_KEY_ID"))
    ap.add_argument("--secret-key", default=os.environ.get("VIGIL_E2E_SECRET_ACCESS_KEY"))
    ap.add_argument("--project", help="with --server-url: the project")
    ap.add_argument("--model-version", help="with --server-url: its hosted model version")
    a = ap.parse_args()
    if a.server_url and not (a.access_key and a.secret_key and a.project and a.model_version):
        ap.error("--server-url needs --access-key, --secret-key, --project and --model-version")
    E.install_signal_handlers()
    b = Bench(a)
    try:
        b.run()
    except E.Failure as e:
        sys.exit(f"benchmark failed: {e}")
    finally:
        E._cleanup()
        shutil.rmtree(b.sock_dir, ignore_errors=True)
        if not a.keep:
            shutil.rmtree(b.work, ignore_errors=True)


if __name__ == "__main__":
    main()
