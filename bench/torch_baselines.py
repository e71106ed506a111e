#!/usr/bin/env python3
"""The baselines of bench/gpu_stream.sh: stream an MLP's weights through a GPU with PyTorch.

Computes y = x @ W0 @ W1 @ ... @ W(L-1) with bf16 activations (fp32 accumulation in cuBLAS,
one rounding to bf16 per layer), the weights read from the file and offsets that ferry's
graph records, in one of three ways:
  sync        per layer: copy the weight to the GPU, wait, multiply (the plain way);
  prefetch    two GPU weight buffers and a copy stream: the copy of layer i+1 overlaps the
              multiply of layer i (what a careful engineer writes by hand);
  accelerate  Accelerate's cpu_offload (weights in host memory) or disk_offload (weights
              read from its offload folder), on a module per layer computing x @ W.
Weights rest either in host memory (`--source host`: pinned for sync/prefetch; Accelerate keeps
its own copy) or in the weight file on disk (`--source nvme`: read with O_DIRECT, so neither the
page cache nor a warm run flatters the number; Accelerate reads through its memmaps after the
page cache is dropped). Prints one JSON object per measurement on stdout.
"""
import argparse
import concurrent.futures as cf
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import yaml

ALIGN = 4096
CHUNK = 16 << 20  # bytes per O_DIRECT read in the prefetch reader


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def load_layers(graph_path):
    """The weights' (offset, K, N) in op order, and the input's shape, from ferry's graph."""
    with open(graph_path) as f:
        g = yaml.safe_load(f)
    tensors = g["tensors"]
    layers = []
    for op in g["ops"]:
        x, w = op["reads"]
        t = tensors[w]
        assert t["dtype"] == "bf16", "the baselines handle bf16 weights"
        layers.append((int(t["source"]["offset"]), int(t["shape"][0]), int(t["shape"][1])))
    return layers, [int(d) for d in tensors["x"]["shape"]]


def drop_page_cache():
    """Drops the page cache (root only); returns whether it could."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def pinned_empty(nbytes):
    return torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)


def pread_direct(fd, buf_u8, offset):
    """Reads len(buf_u8) bytes at offset into the pinned CPU tensor buf_u8 (O_DIRECT)."""
    view = memoryview(buf_u8.numpy())
    done = 0
    while done < len(view):
        n = os.preadv(fd, [view[done:]], offset + done)
        if n <= 0:
            raise IOError(f"short read at {offset + done}")
        done += n


def pread_direct_parallel(pool, fd, buf_u8, offset):
    n = buf_u8.numel()
    futs = [pool.submit(pread_direct, fd, buf_u8[at : min(n, at + CHUNK)], offset + at)
            for at in range(0, n, CHUNK)]
    for f in futs:
        f.result()


def as_bf16(u8, k, n):
    return u8.view(torch.bfloat16).view(k, n)


class Weights:
    """The weights in pinned host memory (source host) or an O_DIRECT handle on the file."""

    def __init__(self, path, layers, source):
        self.path, self.layers, self.source = path, layers, source
        self.host = None
        if source == "host":
            total = max(off + k * n * 2 for off, k, n in layers)
            self.host = pinned_empty(total)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
            try:
                with cf.ThreadPoolExecutor(8) as pool:
                    pread_direct_parallel(pool, fd, self.host, 0)
            finally:
                os.close(fd)

    def host_layer(self, i):
        off, k, n = self.layers[i]
        return as_bf16(self.host[off : off + k * n * 2], k, n)


def run_sync(w, x_host, dev):
    """Per layer: (read,) copy, wait, multiply."""
    L = len(w.layers)
    _, k, n = w.layers[0]
    gw = torch.empty((k, n), dtype=torch.bfloat16, device=dev)
    fd = staging = None
    if w.source == "nvme":
        fd = os.open(w.path, os.O_RDONLY | os.O_DIRECT)
        staging = pinned_empty(k * n * 2)
    try:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        x = x_host.to(dev, non_blocking=True)  # host x to host y, as ferry's clock counts it
        for i in range(L):
            off, k, n = w.layers[i]
            if fd is not None:
                pread_direct(fd, staging, off)
                src = as_bf16(staging, k, n)
            else:
                src = w.host_layer(i)
            gw.copy_(src)  # synchronous with respect to the host: pinned, then waits
            x = x @ gw
        y = x.cpu()
        t = time.perf_counter() - t0
    finally:
        if fd is not None:
            os.close(fd)
    return t, y


def run_prefetch(w, x_host, dev, slots=3):
    """Two GPU weight buffers; the copy of layer i+1 (on its own stream) overlaps the multiply
    of layer i. From nvme, reader threads fill `slots` pinned staging buffers ahead."""
    L = len(w.layers)
    _, k, n = w.layers[0]
    gbuf = [torch.empty((k, n), dtype=torch.bfloat16, device=dev) for _ in range(2)]
    copy_stream = torch.cuda.Stream()
    comp = torch.cuda.current_stream()
    copied = [torch.cuda.Event() for _ in range(2)]
    used = [torch.cuda.Event() for _ in range(2)]
    nvme = w.source == "nvme"
    fd = None
    if nvme:
        fd = os.open(w.path, os.O_RDONLY | os.O_DIRECT)
        staging = [pinned_empty(k * n * 2) for _ in range(slots)]
        drained = [None] * slots  # event after which a staging slot may be refilled
        chunk_pool = cf.ThreadPoolExecutor(16)
        reader = cf.ThreadPoolExecutor(slots)

        def read(i):
            s = i % slots
            if drained[s] is not None:
                drained[s].synchronize()
            pread_direct_parallel(chunk_pool, fd, staging[s], w.layers[i][0])

    try:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        x = x_host.to(dev, non_blocking=True)  # host x to host y, as ferry's clock counts it
        reads = {}
        if nvme:
            for i in range(min(slots, L)):
                reads[i] = reader.submit(read, i)

        def issue_copy(i):
            b = i % 2
            with torch.cuda.stream(copy_stream):
                copy_stream.wait_event(used[b])  # the multiply that last read gbuf[b] is done
                if nvme:
                    reads.pop(i).result()
                    src = as_bf16(staging[i % slots], k, n)
                else:
                    src = w.host_layer(i)
                gbuf[b].copy_(src, non_blocking=True)
                copied[b].record(copy_stream)
                if nvme:
                    ev = torch.cuda.Event()
                    ev.record(copy_stream)
                    drained[i % slots] = ev
                    if i + slots < L:
                        reads[i + slots] = reader.submit(read, i + slots)

        issue_copy(0)
        for i in range(L):
            if i + 1 < L:
                issue_copy(i + 1)
            b = i % 2
            comp.wait_event(copied[b])
            x = x @ gbuf[b]
            used[b].record(comp)
        y = x.cpu()
        t = time.perf_counter() - t0
    finally:
        if nvme:
            reader.shutdown()
            chunk_pool.shutdown()
            os.close(fd)
    return t, y


class MatMul(torch.nn.Module):
    """One layer: x @ w, with w as ferry stores it ([K, N])."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(w, requires_grad=False)

    def forward(self, x):
        return x @ self.w


def build_accelerate(w, dev, offload_dir):
    import accelerate

    mods = []
    if w.source == "host":
        for i in range(len(w.layers)):
            # Accelerate keeps its own (pageable) copy, as it would of a model's state dict.
            mods.append(MatMul(w.host_layer(i).clone()))
        model = torch.nn.Sequential(*mods).eval()
        accelerate.cpu_offload(model, execution_device=dev)
    else:
        with open(w.path, "rb") as f:
            for off, k, n in w.layers:
                f.seek(off)
                buf = torch.frombuffer(bytearray(f.read(k * n * 2)), dtype=torch.bfloat16)
                mods.append(MatMul(buf.view(k, n)))
        model = torch.nn.Sequential(*mods).eval()
        accelerate.disk_offload(model, offload_dir=offload_dir, execution_device=dev)
    return model


def run_accelerate(model, x_host, dev):
    with torch.no_grad():
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        y = model(x_host.to(dev)).cpu()
        t = time.perf_counter() - t0
    return t, y


def link_rates(dev, nbytes=1 << 30, reps=10):
    """Pinned host<->device copy rates in bytes/s (median of reps, timed by CUDA events)."""
    h = pinned_empty(nbytes)
    h.random_(0, 255)
    d = torch.empty(nbytes, dtype=torch.uint8, device=dev)
    rates = {}
    for name, dst, src in (("h2d", d, h), ("d2h", h, d)):
        dst.copy_(src, non_blocking=True)
        torch.cuda.synchronize()
        times = []
        for _ in range(reps):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            dst.copy_(src, non_blocking=True)
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b) / 1e3)
        rates[name] = nbytes / statistics.median(times)
    return rates


def rel_err(y, ref):
    y64, r64 = y.double(), ref.double()
    return float((y64 - r64).norm() / r64.norm())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--graph", required=True, help="ferry graph (op order, weight offsets)")
    ap.add_argument("--weights", required=True, help="the weight file the graph points into")
    ap.add_argument("--x", required=True, help="input x: raw bf16 [batch, hidden]")
    ap.add_argument("--source", choices=["host", "nvme"], required=True)
    ap.add_argument("--variants", default="sync,prefetch,accelerate")
    ap.add_argument("--reps", type=int, default=3, help="timed runs per variant (median)")
    ap.add_argument("--out-dir", required=True, help="writes y-<variant>-<source>.bin here")
    ap.add_argument("--offload-dir", default=None, help="Accelerate's disk_offload folder")
    ap.add_argument("--link", action="store_true", help="also measure pinned h2d/d2h")
    a = ap.parse_args()

    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    layers, xshape = load_layers(a.graph)
    x_host = torch.from_numpy(np.fromfile(a.x, dtype=np.int16)).view(torch.bfloat16)
    x_host = x_host.view(*xshape).pin_memory()
    batch = xshape[0]
    weight_bytes = sum(k * n * 2 for _, k, n in layers)
    if a.link:
        r = link_rates(dev)
        print(json.dumps({"what": "link", "h2d": r["h2d"], "d2h": r["d2h"]}), flush=True)

    w = Weights(a.weights, layers, a.source)
    # Warm-up outside the timings: cuBLAS handles, kernels, the allocator's pools.
    xw = x_host.to(dev)
    gw = torch.empty((layers[0][1], layers[0][2]), dtype=torch.bfloat16, device=dev)
    for _ in range(3):
        (xw @ gw).sum().item()
    del xw, gw

    for variant in a.variants.split(","):
        times, y = [], None
        model = None
        if variant == "accelerate":
            model = build_accelerate(w, dev, a.offload_dir)
        for rep in range(a.reps + 1):  # the first run warms up and is not counted
            dropped = drop_page_cache() if a.source == "nvme" else None
            if variant == "sync":
                t, y = run_sync(w, x_host, dev)
            elif variant == "prefetch":
                t, y = run_prefetch(w, x_host, dev)
            elif variant == "accelerate":
                t, y = run_accelerate(model, x_host, dev)
            else:
                raise SystemExit(f"unknown variant {variant}")
            if rep:
                times.append(t)
        del model
        torch.cuda.empty_cache()
        out = os.path.join(a.out_dir, f"y-{variant}-{a.source}-{batch}.bin")
        y.contiguous().view(torch.int16).numpy().tofile(out)
        t = statistics.median(times)
        print(json.dumps({"what": "run", "variant": variant, "source": a.source, "batch": batch,
                          "seconds": t, "times": times, "bytes": weight_bytes,
                          "cache_dropped": dropped, "y": out}), flush=True)
        log(f"{variant:10s} {a.source:5s} batch {batch:5d}: {t * 1e3:9.1f} ms "
            f"{weight_bytes / t / 1e9:6.1f} GB/s  runs {[round(x * 1e3, 1) for x in times]}")


def table(path, h2d_note=""):
    """Prints the table of gpu_stream.sh from the JSON lines in path."""
    rows, link, disk, dd, how, ferry = [], {}, None, None, "dd", {}
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        if r["what"] == "link":
            link = r
        elif r["what"] == "disk":
            disk, dd, how = r["read"], r.get("dd"), r.get("how", "dd")
        elif r["what"] in ("run", "ferry"):
            rows.append(r)
    refs = {}
    for r in rows:
        if r.get("variant") == "sync" and r["source"] == "host":
            refs[r["batch"]] = torch.from_numpy(np.fromfile(r["y"], dtype=np.int16)).view(
                torch.bfloat16)
    h2d = link.get("h2d")
    print(f"pinned h2d {h2d / 1e9:.1f} GB/s, d2h {link.get('d2h', 0) / 1e9:.1f} GB/s" if h2d
          else "pinned h2d: not measured", end="")
    if disk:
        also = ""
        if dd and how != "dd":
            also = f"; dd of the weight file, one request at a time: {dd / 1e9:.2f} GB/s"
        print(f"; disk read {disk / 1e9:.2f} GB/s ({how}{also})")
    else:
        print("")
    hdr = (f"| {'source':6s} | {'batch':>5s} | {'method':22s} | {'time ms':>9s} | {'GB/s':>6s} | "
           f"{'of limit':>8s} | {'predicted ms':>12s} | {'rel err vs sync':>15s} |")
    print(hdr)
    print("|" + "|".join("-" * (len(c)) for c in hdr.split("|")[1:-1]) + "|")
    names = {"sync": "torch sync copy+matmul", "prefetch": "torch 2-stream prefetch",
             "accelerate": "accelerate offload", "ferry": "ferry run --device cuda"}
    order = {"ferry": 0, "sync": 1, "prefetch": 2, "accelerate": 3}
    rows.sort(key=lambda r: (r["source"] != "host", r["batch"], order.get(r["variant"], 9)))
    for r in rows:
        t = r["seconds"]
        if t is None:
            print(f"| {r['source']:6s} | {r['batch']:5d} | {names.get(r['variant'], r['variant']):22s} "
                  f"| {'failed':>9s} | {'':>6s} | {'':>8s} | {'':>12s} | {r.get('note', ''):>15s} |")
            continue
        rate = r["bytes"] / t
        limit = h2d if r["source"] == "host" or not disk else min(h2d or disk, disk)
        pred = f"{r['predicted'] * 1e3:.1f}" if r.get("predicted") else ""
        err = ""
        ref = refs.get(r["batch"])
        if ref is not None and r.get("y") and os.path.exists(r["y"]):
            y = torch.from_numpy(np.fromfile(r["y"], dtype=np.int16)).view(torch.bfloat16)
            err = "bitwise equal" if torch.equal(y.view(torch.int16), ref.view(torch.int16)) \
                else f"{rel_err(y, ref):.2e}"
        print(f"| {r['source']:6s} | {r['batch']:5d} | {names.get(r['variant'], r['variant']):22s} | "
              f"{t * 1e3:9.1f} | {rate / 1e9:6.1f} | {rate / limit if limit else 0:8.3f} | "
              f"{pred:>12s} | {err:>15s} |")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "table":
        table(sys.argv[2])
    else:
        main()
