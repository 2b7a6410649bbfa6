#!/usr/bin/env python3
"""The PKCS#11 comparison: one program, python-pkcs11's driver
(pkcs11/tests/python/drive.py), run against SoftHSM2 (in-process, on its
own file token) and against the hsm-cluster module (a 3-node cluster of
hsm-node processes on this machine), with the same operations, process
counts and durations, one after the other in one run. Prints a Markdown
table (ours beside SoftHSM2's, and their ratio) and writes JSON.

  ./x bench-pkcs11 [--seconds 5] [--procs 1,2] [--ops ec-sign,...] [--out DIR]

Needs: release builds of hsm-node, hsm and libhsm_pkcs11.so (./x builds
them), softhsm2, python-pkcs11 (./x installs both).
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DRIVE = ROOT / "pkcs11/tests/python/drive.py"
OPS = ["ec-sign", "rsa-sign", "aes-gcm-1k", "keygen-aes", "keygen-ec", "keygen-rsa"]
SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"


def free_udp_base(n):
    for base in range(31000, 60000, 17):
        socks = []
        try:
            for i in range(n):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise SystemExit("no free UDP ports")


def run(cmd, env=None, check=True):
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if check and out.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{out.stdout}{out.stderr}")
    return out


class Cluster:
    """Three hsm-node processes, activated, with the crypto user bench."""

    def __init__(self, bin_dir, work):
        self.bin = bin_dir
        self.dir = work / "cluster"
        self.procs = []
        base = free_udp_base(3)
        run([bin_dir / "hsm-node", "dev", "--setup-only", "--nodes", "3", "--base-port",
             str(base), "--dir", self.dir], env={**os.environ, "HSM_ADMIN_PASSWORD": "initial-admin-pw"})
        for i in (1, 2, 3):
            log = open(self.dir / f"node{i}.log", "w")
            self.procs.append(subprocess.Popen(
                [bin_dir / "hsm-node", "start", "--config", self.dir / f"node{i}.toml"],
                stdout=subprocess.DEVNULL, stderr=log,
                env={**os.environ, "HSM_LOG": "warn"}))
        self.env = {**os.environ, "HSM_CLUSTER": str(self.dir / "client.toml")}
        deadline = time.monotonic() + 60
        while True:
            out = run([bin_dir / "hsm", "cluster", "activate", "--new-password-env", "NEW_PW"],
                      env={**self.env, "HSM_USER": "admin", "HSM_PASSWORD": "initial-admin-pw",
                           "NEW_PW": "officer-password-1"}, check=False)
            if out.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"cannot activate: {out.stdout}{out.stderr}")
            time.sleep(0.3)
        run([bin_dir / "hsm", "user", "create", "--username", "bench", "--role", "crypto-user",
             "--password-env", "USER_PW"],
            env={**self.env, "HSM_USER": "admin", "HSM_PASSWORD": "officer-password-1",
                 "USER_PW": "bench-password-1"})

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def softhsm_env(work):
    base = work / "softhsm"
    (base / "tokens").mkdir(parents=True)
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base}/tokens\nobjectstore.backend = file\n"
                    "log.level = ERROR\nslots.removable = false\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    run(["softhsm2-util", "--init-token", "--free", "--label", "peer", "--pin", "1234",
         "--so-pin", "5678"], env=env)
    return {**env, "PKCS11_MODULE": SOFTHSM, "PKCS11_PIN": "1234", "PKCS11_TOKEN": "peer",
            "PKCS11_GCM_IV": "counter"}


def cpu_seconds(pids):
    """User and system CPU seconds the processes have used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        # Fields after the command name (which may hold spaces): utime and
        # stime are the 14th and 15th of the whole line.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick


def bench(python, env, op, procs, seconds, nodes=()):
    """ops/s, the client processes' CPU microseconds per operation, and the
    nodes' (0 when there are none)."""
    before = cpu_seconds(nodes)
    out = run([python, DRIVE, "bench", "--op", op, "--procs", str(procs),
               "--seconds", str(seconds)], env=env)
    node_cpu = cpu_seconds(nodes) - before
    r = json.loads(out.stdout.strip().splitlines()[-1])
    ops = max(r["ops"], 1)
    return r["per_second"], r["client_cpu_seconds"] * 1e6 / ops, node_cpu * 1e6 / ops


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="directory with hsm-node, hsm, libhsm_pkcs11.so")
    ap.add_argument("--python", required=True, help="a python with python-pkcs11")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--procs", default="1,2")
    ap.add_argument("--ops", default=",".join(OPS), help="operations, comma-separated")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    bin_dir = Path(args.bin).resolve()
    procs = [int(p) for p in args.procs.split(",")]
    with tempfile.TemporaryDirectory(prefix="hsm-pkcs11-bench-") as tmp:
        work = Path(tmp)
        peer = softhsm_env(work)
        run([args.python, DRIVE, "setup"], env=peer)
        cluster = Cluster(bin_dir, work)
        try:
            ours = {**cluster.env, "PKCS11_MODULE": str(bin_dir / "libhsm_pkcs11.so"),
                    "PKCS11_PIN": "bench:bench-password-1", "PKCS11_GCM_IV": "token"}
            ours.pop("PKCS11_TOKEN", None)
            run([args.python, DRIVE, "setup"], env=ours)
            rows = []
            for op in args.ops.split(","):
                for n in procs:
                    theirs, their_cpu, _ = bench(args.python, peer, op, n, args.seconds)
                    mine, my_cpu, node_cpu = bench(args.python, ours, op, n, args.seconds,
                                                   [p.pid for p in cluster.procs])
                    rows.append({"op": op, "procs": n, "hsm_cluster_per_s": mine,
                                 "softhsm2_per_s": theirs, "ratio": mine / theirs if theirs else None,
                                 "hsm_cluster_client_cpu_us": my_cpu,
                                 "hsm_cluster_nodes_cpu_us": node_cpu,
                                 "softhsm2_cpu_us": their_cpu})
                    print(f"{op} x{n}: hsm-cluster {mine:,.0f}/s (CPU/op: client {my_cpu:,.0f} us, "
                          f"nodes {node_cpu:,.0f} us), SoftHSM2 {theirs:,.0f}/s "
                          f"(CPU/op {their_cpu:,.0f} us)", file=sys.stderr)
        finally:
            cluster.stop()
    lines = ["| operation | processes | hsm-cluster (3 nodes) ops/s | SoftHSM2 (in-process) ops/s "
             "| ratio | CPU µs/op: application with our module | CPU µs/op: the 3 nodes "
             "| CPU µs/op: application with SoftHSM2 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['op']} | {r['procs']} | {r['hsm_cluster_per_s']:,.0f} | "
                     f"{r['softhsm2_per_s']:,.0f} | {r['ratio']:.0%} | "
                     f"{r['hsm_cluster_client_cpu_us']:,.0f} | {r['hsm_cluster_nodes_cpu_us']:,.0f} | "
                     f"{r['softhsm2_cpu_us']:,.0f} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "pkcs11.json").write_text(json.dumps(
            {"seconds": args.seconds, "rows": rows}, indent=2))
        (out / "pkcs11.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
