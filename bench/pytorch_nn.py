#!/usr/bin/python3
"""PyTorch's numbers for bench_nn.cpp and peak_memory.cpp, measured the same way.

  * timing: forward + backward of three torch.nn.functional layers on [32, 64, 32, 32] float32
      conv2d      64 -> 64, 3x3, padding 1, with bias (x, weight and bias require grad)
      max_pool2d  2x2, stride 2 (x requires grad)
      batch_norm  training mode, weight and bias (requiring grad), running statistics
    each step: out = op(...); out.backward(R) with R a fixed random tensor of out's shape; every
    .grad reset to None. At torch.set_num_threads(1) and (2). Wall time per step: each batch of
    steps runs >= --min-time seconds (the mean per step is one sample), --reps batches per
    configuration, taken in a random order per round (as bench_nn's random interleaving, so a
    burst of load from another process spreads over all configurations); reported: the MEDIAN
    over batches (the figure judged, as bench_nn's median aggregate) and the best batch (min).
  * memory (its own process; --skip-memory leaves it out): 10 x [Conv2d(64, 64, 3, padding=1),
    BatchNorm2d(64), ReLU], input [32, 64, 32, 32], loss = mean(output), training mode, 1 thread.
    One warm-up step, then glibc's free heap is returned (malloc_trim, the counterpart of
    tapegrad's empty_cache), the resident set is read (baseline), VmHWM is reset
    (/proc/self/clear_refs) and one measured step runs: peak RSS during it, the difference to the
    baseline, and the whole process's peak.
    Tensor bytes: a third step under the profiler (profile_memory=True); the running sum of its
    allocation events gives the peak of live tensor bytes above those alive before the step.

Every worker runs with OPENBLAS_NUM_THREADS=1 (OpenBLAS reads it when it loads; PyTorch's conv
runs on oneDNN here, its threads follow torch.set_num_threads). Run with Debian's interpreter:

    /usr/bin/python3 bench/pytorch_nn.py [--reps 10] [--json out.json] [--skip-timing] [--skip-memory]
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

OPS = ("conv2d", "max_pool2d", "batch_norm")
THREADS = (1, 2)
N, C, H, W, K = 32, 64, 32, 32, 3
MIB = 1024.0 * 1024.0


def make_steps(torch):
    F = torch.nn.functional
    steps = {}

    torch.manual_seed(1)
    x = torch.randn(N, C, H, W, requires_grad=True)
    w = (torch.randn(C, C, K, K) * 0.05).requires_grad_()
    b = torch.randn(C, requires_grad=True)
    r = torch.randn(N, C, H, W)

    def conv():
        F.conv2d(x, w, b, padding=1).backward(r)
        x.grad = w.grad = b.grad = None

    steps["conv2d"] = conv

    torch.manual_seed(2)
    xp = torch.randn(N, C, H, W, requires_grad=True)
    rp = torch.randn(N, C, H // 2, W // 2)

    def pool():
        F.max_pool2d(xp, 2, 2).backward(rp)
        xp.grad = None

    steps["max_pool2d"] = pool

    torch.manual_seed(3)
    xb = torch.randn(N, C, H, W, requires_grad=True)
    weight = torch.ones(C, requires_grad=True)
    bias = torch.zeros(C, requires_grad=True)
    running_mean, running_var = torch.zeros(C), torch.ones(C)
    rb = torch.randn(N, C, H, W)

    def bn():
        F.batch_norm(xb, running_mean, running_var, weight, bias, training=True, momentum=0.1,
                     eps=1e-5).backward(rb)
        xb.grad = weight.grad = bias.grad = None

    steps["batch_norm"] = bn
    return steps


def timing_worker(reps, min_time, seed):
    import torch

    steps = make_steps(torch)
    configs = [(op, t) for op in OPS for t in THREADS]
    calls = {}
    for op, t in configs:  # warm-up, and the number of steps per batch (>= min_time)
        torch.set_num_threads(t)
        steps[op]()
        t0 = time.perf_counter()
        steps[op]()
        dt = time.perf_counter() - t0
        calls[op, t] = max(1, int(min_time / max(dt, 1e-9)) + 1)
    samples = {cfg: [] for cfg in configs}
    rng = random.Random(seed)
    for _ in range(reps):
        order = configs[:]
        rng.shuffle(order)
        for op, t in order:
            torch.set_num_threads(t)
            steps[op]()  # untimed: the first step after a thread change may start threads
            t0 = time.perf_counter()
            for _ in range(calls[op, t]):
                steps[op]()
            samples[op, t].append((time.perf_counter() - t0) / calls[op, t])
    out = {"torch": torch.__version__, "mkldnn": bool(torch.backends.mkldnn.is_available()
                                                       and torch.backends.mkldnn.enabled),
           "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", ""), "reps": reps,
           "min_time": min_time, "timing": {}}
    for (op, t), s in samples.items():
        out["timing"].setdefault(op, {})[str(t)] = {
            "median_ms": statistics.median(s) * 1e3, "min_ms": min(s) * 1e3,
            "samples_ms": [v * 1e3 for v in s], "steps_per_batch": calls[op, t]}
    return out


def status_bytes(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return float(line.split()[1]) * 1024.0  # kB
    return -1.0


def memory_worker(blocks, threads):
    import ctypes
    import gc

    import torch

    torch.set_num_threads(threads)
    rss_start = status_bytes("VmRSS")  # python + torch imported
    nn = torch.nn
    torch.manual_seed(1)
    layers = []
    for _ in range(blocks):
        layers += [nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU()]
    model = nn.Sequential(*layers).train()
    x = torch.randn(32, 64, 32, 32)

    def step():
        model(x).mean().backward()

    step()  # warm-up
    model.zero_grad(set_to_none=True)
    gc.collect()
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc_trim(0)

    process_before = status_bytes("VmHWM")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        hwm_reset = True
    except OSError:
        hwm_reset = False
    rss_before = status_bytes("VmRSS")
    t0 = time.perf_counter()
    step()
    seconds = time.perf_counter() - t0
    rss_peak = status_bytes("VmHWM")
    model.zero_grad(set_to_none=True)

    # Live tensor bytes: those alive before the step (parameters, buffers, input), then the peak
    # of the running sum of the profiler's allocation events during one more step.
    live_before = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()) + [x])
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_us())  # stable: ties keep the recorded order
    cur = peak = 0
    for e in events:
        cur += e.nbytes()
        peak = max(peak, cur)
    return {"library": "pytorch", "torch": torch.__version__, "blocks": blocks, "threads": threads,
            "hwm_reset": hwm_reset, "rss_start": rss_start, "rss_before": rss_before, "rss_peak": rss_peak,
            "process_peak": max(process_before, rss_peak), "live_before": live_before,
            "live_peak": live_before + peak, "step_seconds": seconds}


def run_worker(args):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    cmd = [sys.executable, os.path.abspath(__file__)] + args
    res = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--reps", type=int, default=10, help="batches per configuration (default 10)")
    ap.add_argument("--min-time", type=float, default=0.5, help="seconds per batch (default 0.5)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random order of the batches")
    ap.add_argument("--blocks", type=int, default=10, help="conv-BN-ReLU blocks for --memory (default 10)")
    ap.add_argument("--memory-threads", type=int, default=1, help="torch threads for the memory run (default 1)")
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--timing-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--memory-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.timing_worker:
        print(json.dumps(timing_worker(args.reps, args.min_time, args.seed)))
        return
    if args.memory_worker:
        print(json.dumps(memory_worker(args.blocks, args.memory_threads)))
        return

    out = {}
    if not args.skip_timing:
        r = run_worker(["--timing-worker", "--reps", str(args.reps), "--min-time", str(args.min_time),
                        "--seed", str(args.seed)])
        out.update(r)
        print(f"PyTorch {r['torch']} (oneDNN {'on' if r['mkldnn'] else 'off'}), OPENBLAS_NUM_THREADS=1, "
              f"forward + backward on [{N}, {C}, {H}, {W}], ms per step (wall), "
              f"{r['reps']} batches of >= {r['min_time']} s")
        print(f"  {'op':<12}{'threads':>8}{'median':>10}{'best':>10}{'steps/batch':>13}")
        for op in OPS:
            for t in THREADS:
                c = r["timing"][op][str(t)]
                print(f"  {op:<12}{t:>8}{c['median_ms']:>10.2f}{c['min_ms']:>10.2f}{c['steps_per_batch']:>13}")
    if not args.skip_memory:
        m = run_worker(["--memory-worker", "--blocks", str(args.blocks), "--memory-threads", str(args.memory_threads)])
        out["memory"] = m
        print(f"PyTorch {m['torch']}: {m['blocks']} x [Conv2d(64, 64, 3, padding=1), BatchNorm2d(64), ReLU], "
              f"input [32, 64, 32, 32], forward + backward of mean(out), {m['threads']} thread(s)")
        print(f"  RSS at start (python + torch) {m['rss_start'] / MIB:.1f} MiB; before the measured step "
              f"{m['rss_before'] / MIB:.1f} MiB; peak during it {m['rss_peak'] / MIB:.1f} MiB"
              + ("" if m["hwm_reset"] else " (clear_refs not permitted: peak of the whole process)"))
        print(f"  RSS the step added (peak - before): {(m['rss_peak'] - m['rss_before']) / MIB:.1f} MiB; "
              f"process peak RSS {m['process_peak'] / MIB:.1f} MiB")
        print(f"  tensor bytes (profiler): {m['live_before'] / MIB:.1f} MiB before, peak {m['live_peak'] / MIB:.1f} MiB, "
              f"the step added {(m['live_peak'] - m['live_before']) / MIB:.1f} MiB")
        print(f"  measured step: {m['step_seconds']:.2f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
