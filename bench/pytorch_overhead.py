#!/usr/bin/python3
"""PyTorch's numbers for the benchmarks in bench_autograd.cpp, measured the same way.

  * eager per-op overhead: a chain of 100 ops on one-element tensors, alternating y = y * w and
    y = y + w with a leaf w that requires grad; forward (recording), forward + backward, and
    forward under torch.no_grad(); reported in ns (of process CPU time) per op.
  * matmul forward + backward: c = a @ b, c.backward(ones), 6 n^3 flops, n = 256, 512, 1024
    (wall-clock time of the fastest step over 2 s, as bench_autograd's Matmul/paired).

Run with Debian's interpreter (the only one that has torch here):

    /usr/bin/python3 bench/pytorch_overhead.py [--json out.json] [--quick]

With --coretype X, matmul is also timed with OPENBLAS_CORETYPE=X (threads 1/1 and 2/2): tapegrad
switches OpenBLAS from its generic Prescott fallback to SkylakeX kernels on this machine, PyTorch
does not, so this is the same-kernels comparison.

Each thread configuration runs in its own process because OpenBLAS reads OPENBLAS_NUM_THREADS
once, when it is loaded: torch.set_num_threads() sets OpenMP/ATen threads but not OpenBLAS's
(Debian's torch does its sgemm through OpenBLAS). Configurations:
    threads=1, OPENBLAS_NUM_THREADS=1   (the comparison configuration of ENVIRONMENT.md)
    threads=2, OPENBLAS_NUM_THREADS=1
    threads=2, OPENBLAS_NUM_THREADS=2
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CHAIN_OPS = 100
SIZES = (256, 512, 1024)
CONFIGS = ((1, 1), (2, 1), (2, 2))  # (torch threads, OPENBLAS_NUM_THREADS)
CORE_CONFIGS = ((1, 1), (2, 2))      # the configurations repeated with --coretype


def timeit(fn, min_time, repeats, clock=time.perf_counter, pick=statistics.median):
    """pick (median or min) over `repeats` batches of the seconds per call; each batch runs >= min_time."""
    fn()  # warm-up
    calls = 1
    while True:
        t0 = clock()
        for _ in range(calls):
            fn()
        dt = clock() - t0
        if dt >= min_time / 4:
            break
        calls *= 2
    calls = max(1, int(calls * min_time / max(dt, 1e-9)))
    samples = []
    for _ in range(repeats):
        t0 = clock()
        for _ in range(calls):
            fn()
        samples.append((clock() - t0) / calls)
    return pick(samples)


def best_step(fn, min_time):
    """Seconds of the fastest single call of fn over at least min_time seconds (and 3 calls)."""
    fn()  # warm-up
    best, total, calls = float("inf"), 0.0, 0
    while total < min_time or calls < 3:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, total, calls = min(best, dt), total + dt, calls + 1
    return best


def worker(threads, quick, chain_skip=False):
    import torch

    torch.set_num_threads(threads)
    min_time, repeats = (0.1, 3) if quick else (0.5, 5)
    out = {"threads": threads, "openblas_threads": int(os.environ.get("OPENBLAS_NUM_THREADS", "0")),
           "coretype": os.environ.get("OPENBLAS_CORETYPE", ""), "torch": torch.__version__}

    if threads == 1 and out["openblas_threads"] == 1 and not chain_skip:
        x0 = torch.full((1,), 0.5)
        w = torch.full((1,), 0.5, requires_grad=True)

        def chain():
            y = x0
            for _ in range(CHAIN_OPS // 2):
                y = y * w
                y = y + w
            return y

        def fwd_bwd():
            chain().backward()
            w.grad = None

        def nograd():
            with torch.no_grad():
                chain()

        def scalar_fwd_bwd():  # bench_autograd's Tape/scalar_fwd_bwd: number operands
            y = w
            for _ in range(CHAIN_OPS // 2):
                y = y * 1.0001 + 0.0001
            y.backward()
            w.grad = None

        # CPU time of this (single-threaded) process, as bench_autograd's Tape/* report.
        cpu = time.process_time
        out["chain_fwd_bwd_ns_per_op"] = timeit(fwd_bwd, min_time, repeats, cpu) / CHAIN_OPS * 1e9
        out["chain_fwd_record_ns_per_op"] = timeit(chain, min_time, repeats, cpu) / CHAIN_OPS * 1e9
        out["chain_fwd_nograd_ns_per_op"] = timeit(nograd, min_time, repeats, cpu) / CHAIN_OPS * 1e9
        out["scalar_fwd_bwd_ns_per_op"] = timeit(scalar_fwd_bwd, min_time, repeats, cpu) / CHAIN_OPS * 1e9

    torch.manual_seed(1)
    out["matmul_gflops"] = {}
    for n in SIZES:
        a = torch.randn(n, n, requires_grad=True)
        b = torch.randn(n, n, requires_grad=True)
        g = torch.ones(n, n)

        def step():
            c = a @ b
            c.backward(g)
            a.grad = None
            b.grad = None

        # Wall time of the fastest single step, as bench_autograd's Matmul/paired reports (on a
        # shared machine the fastest step is the one nobody preempted).
        t = best_step(step, 2.0 if not quick else 0.3)
        out["matmul_gflops"][str(n)] = 6.0 * n ** 3 / t / 1e9
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--quick", action="store_true", help="shorter timing (for smoke tests)")
    ap.add_argument("--coretype", help="also time matmul with OPENBLAS_CORETYPE set to this (e.g. SkylakeX, "
                    "the kernels tapegrad switches OpenBLAS to on this machine)")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--matmul-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.quick, args.matmul_only)))
        return

    runs = [(t, ob, None) for t, ob in CONFIGS]
    if args.coretype:
        runs += [(t, ob, args.coretype) for t, ob in CORE_CONFIGS]
    results = []
    for threads, ob, core in runs:
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(ob), OMP_NUM_THREADS=str(threads))
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", str(threads)] + (["--quick"] if args.quick else [])
        if core:
            env["OPENBLAS_CORETYPE"] = core
            cmd.append("--matmul-only")
        res = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        results.append(json.loads(res.stdout.strip().splitlines()[-1]))

    r1 = results[0]
    print(f"PyTorch {r1['torch']} eager autograd, one-element tensors, chain of {CHAIN_OPS} ops "
          "(threads=1, OPENBLAS_NUM_THREADS=1)")
    print(f"  {'mode':<22}{'ns/op':>10}")
    for key, label in (("chain_fwd_bwd_ns_per_op", "forward + backward"),
                       ("chain_fwd_record_ns_per_op", "forward (recording)"),
                       ("chain_fwd_nograd_ns_per_op", "forward under no_grad"),
                       ("scalar_fwd_bwd_ns_per_op", "number operands, f + b")):
        print(f"  {label:<22}{r1[key]:>10.0f}")
    print()
    print("PyTorch matmul forward + backward GFLOP/s (6 n^3 flops per step)")
    header = "".join(f"{'n=' + str(n):>10}" for n in SIZES)
    print(f"  {'torch threads / OPENBLAS_NUM_THREADS [CORETYPE]':<50}{header}")
    for r in results:
        cells = "".join(f"{r['matmul_gflops'][str(n)]:>10.1f}" for n in SIZES)
        label = f"{r['threads']} / {r['openblas_threads']}" + (f" [{r['coretype']}]" if r["coretype"] else "")
        print(f"  {label:<50}{cells}")

    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
