#!/usr/bin/env python3
"""Drive the hsm-cluster PKCS#11 module with python-pkcs11.

The same operations a PKCS#11 throughput comparison runs (RSA-2048 and
P-256 and Ed25519 signatures, AES-256-GCM of 1 KiB, key generation,
random), through python-pkcs11 as any Python application would.

  drive.py check                       make the keys, run every operation
                                       once and check each result
  drive.py setup                       make the keys the operations use
  drive.py bench --op OP --procs N --seconds S
                                       N processes, each with its own
                                       C_Initialize and logged-in session,
                                       loop OP for S seconds; one JSON line
                                       (ops, per second, the processes' CPU
                                       seconds over their loops)

Environment: PKCS11_MODULE (the module), PKCS11_PIN ("user:password"),
PKCS11_TOKEN (token label, optional: the first token otherwise),
PKCS11_GCM_IV ("token": an all-zero IV asks the token to choose, as the
hsm-cluster module requires, and the IV comes in front of the output;
"counter": the caller's own counter IVs, for modules that take them), and
the module's own (HSM_CLUSTER).
"""
import argparse
import hashlib
import json
import multiprocessing as mp
import os
import sys
import time

MODULE = os.environ.get("PKCS11_MODULE", "")
PIN = os.environ.get("PKCS11_PIN", "")
TOKEN = os.environ.get("PKCS11_TOKEN")

OPS = ["rsa-sign", "ec-sign", "ed-sign", "aes-gcm-1k", "keygen-aes", "keygen-ec",
       "keygen-rsa", "random-16"]


def token(lib):
    if TOKEN:
        return lib.get_token(token_label=TOKEN)
    return next(lib.get_tokens())


def ec_params(session, curve_oid_or_name, key_type):
    from pkcs11 import Attribute
    from pkcs11.util.ec import encode_named_curve_parameters
    return session.create_domain_parameters(
        key_type, {Attribute.EC_PARAMS: encode_named_curve_parameters(curve_oid_or_name)},
        local=True)


# python-pkcs11 asks for every usage a key type has by default (an RSA key
# that signs, decrypts and wraps); the cluster's key policy refuses
# conflicting usages, so each key names what it is for.
def sign_only():
    from pkcs11 import MechanismFlag
    return MechanismFlag.SIGN | MechanismFlag.VERIFY


def cipher_only():
    from pkcs11 import MechanismFlag
    return MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT


def make_keys(s):
    from pkcs11 import KeyType
    s.generate_keypair(KeyType.RSA, 2048, store=True, label="py-rsa2048",
                       capabilities=sign_only())
    ec_params(s, "secp256r1", KeyType.EC).generate_keypair(
        store=True, label="py-ecp256", capabilities=sign_only())
    ec_params(s, "1.3.101.112", KeyType.EC_EDWARDS).generate_keypair(
        store=True, label="py-ed25519", capabilities=sign_only())
    s.generate_key(KeyType.AES, 256, store=True, label="py-aes256", capabilities=cipher_only())


def operation(s, op):
    """The operation `op` as a function of no arguments, and its check."""
    from pkcs11 import KeyType, Mechanism, ObjectClass
    from pkcs11.mechanisms import GCMParams

    msg = os.urandom(32)
    if op in ("rsa-sign", "ec-sign", "ed-sign"):
        label, mech = {
            "rsa-sign": ("py-rsa2048", Mechanism.SHA256_RSA_PKCS),
            "ec-sign": ("py-ecp256", Mechanism.ECDSA),
            "ed-sign": ("py-ed25519", Mechanism.EDDSA),
        }[op]
        priv = s.get_key(label=label, object_class=ObjectClass.PRIVATE_KEY)
        pub = s.get_key(label=label, object_class=ObjectClass.PUBLIC_KEY)
        data = hashlib.sha256(msg).digest() if op == "ec-sign" else msg

        def f():
            return priv.sign(data, mechanism=mech)

        def check(sig):
            assert pub.verify(data, sig, mechanism=mech), op
            bad = bytes([sig[0] ^ 1]) + sig[1:]
            assert not pub.verify(data, bad, mechanism=mech), op
        return f, check
    if op == "aes-gcm-1k":
        key = s.get_key(label="py-aes256", object_class=ObjectClass.SECRET_KEY)
        data = os.urandom(1024)
        last = {}

        counter = [0]
        token_iv = os.environ.get("PKCS11_GCM_IV", "token") == "token"

        def f():
            if token_iv:
                # An all-zero IV asks the token to choose one; it comes
                # back in front of the ciphertext.
                iv = bytes(12)
            else:
                counter[0] += 1
                iv = os.getpid().to_bytes(4, "little") + counter[0].to_bytes(8, "little")
            ct = key.encrypt(data, mechanism=Mechanism.AES_GCM,
                             mechanism_param=GCMParams(iv, b"aad", 128))
            last["iv"] = iv
            return ct

        def check(ct):
            iv = last["iv"]
            if token_iv:
                assert len(ct) == 12 + 1024 + 16, len(ct)
                assert ct[:12] != bytes(12), "the token gave no IV"
                # Its own IV and the caller's form decrypt alike.
                pt = key.decrypt(ct[12:], mechanism=Mechanism.AES_GCM,
                                 mechanism_param=GCMParams(ct[:12], b"aad", 128))
                assert pt == data
            else:
                assert len(ct) == 1024 + 16, len(ct)
            pt = key.decrypt(ct, mechanism=Mechanism.AES_GCM,
                             mechanism_param=GCMParams(iv, b"aad", 128))
            assert pt == data
        return f, check
    if op == "keygen-aes":
        def f():
            k = s.generate_key(KeyType.AES, 256, store=False, capabilities=cipher_only())
            k.destroy()
        return f, lambda _: None
    if op == "keygen-ec":
        params = ec_params(s, "secp256r1", KeyType.EC)

        def f():
            pub, priv = params.generate_keypair(store=False, capabilities=sign_only())
            priv.destroy()
        return f, lambda _: None
    if op == "keygen-rsa":
        def f():
            pub, priv = s.generate_keypair(KeyType.RSA, 2048, store=False,
                                           capabilities=sign_only())
            priv.destroy()
        return f, lambda _: None
    if op == "random-16":
        def f():
            return s.generate_random(128)

        def check(r):
            assert len(r) == 16
        return f, check
    raise SystemExit(f"unknown operation {op}")


def check_all():
    import pkcs11
    lib = pkcs11.lib(MODULE)
    with token(lib).open(user_pin=PIN, rw=True) as s:
        make_keys(s)
        for op in OPS:
            f, check = operation(s, op)
            for _ in range(3):
                check(f())
            print(f"{op}: ok")
        check_wrapping(s)
        print("wrap-unwrap: ok")
        check_derivation(s)
        print("ecdh-derive: ok")
        from pkcs11 import Attribute, ObjectClass
        stored = {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.TOKEN: True}
        labels = sorted(k.label for k in s.get_objects(stored))
        assert labels == ["py-aes256"], labels
    # Session keys went with their session; the stored ones remain.
    with token(lib).open(user_pin=PIN, rw=True) as s:
        from pkcs11 import ObjectClass
        labels = sorted(k.label for k in s.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY}))
        assert labels == ["py-aes256"], labels
    print("all operations ok")


def check_wrapping(s):
    """An AES key wrapped under an AES key (KWP) and under an RSA public
    key (OAEP), unwrapped under the same keys: each copy decrypts what the
    original encrypted."""
    from pkcs11 import KeyType, Mechanism, MechanismFlag, ObjectClass, MGF
    from pkcs11.mechanisms import GCMParams
    target = s.generate_key(KeyType.AES, 256, store=False, capabilities=cipher_only(),
                            template={pkcs11_attr("EXTRACTABLE"): True})
    kek = s.generate_key(KeyType.AES, 256, store=False,
                         capabilities=MechanismFlag.WRAP | MechanismFlag.UNWRAP)
    rsa_pub, rsa_priv = s.generate_keypair(
        KeyType.RSA, 2048, store=False, capabilities=MechanismFlag.WRAP | MechanismFlag.UNWRAP)
    data = os.urandom(64)
    iv = bytes(12)  # the token's IV, in front of the ciphertext
    ct = target.encrypt(data, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, b"", 128))
    oaep = (Mechanism.SHA256, MGF.SHA256, None)
    for wrapper, unwrapper, mech, param in [
        (kek, kek, Mechanism.AES_KEY_WRAP_KWP, None),
        (rsa_pub, rsa_priv, Mechanism.RSA_PKCS_OAEP, oaep),
    ]:
        wrapped = wrapper.wrap_key(target, mechanism=mech, mechanism_param=param)
        assert len(wrapped) > 32, len(wrapped)
        # python-pkcs11 asks for every usage unless told: the copy may only
        # have the usages the wrapped key carries.
        copy = unwrapper.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, wrapped,
                                    label="unwrapped", mechanism=mech, mechanism_param=param,
                                    capabilities=cipher_only())
        pt = copy.decrypt(ct, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, b"", 128))
        assert pt == data, mech
        # Damaged wrapped material does not unwrap.
        bad = wrapped[:-1] + bytes([wrapped[-1] ^ 1])
        try:
            unwrapper.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, bad,
                                 mechanism=mech, mechanism_param=param,
                                 capabilities=cipher_only())
        except Exception:
            pass
        else:
            raise AssertionError("damaged wrapped key unwrapped")
        copy.destroy()


def check_derivation(s):
    """Two P-256 pairs agree an AES key through CKM_ECDH1_DERIVE, with the
    raw secret (CKD_NULL) and with ANSI X9.63 SHA-256 (CKD_SHA256_KDF):
    what one side encrypts the other decrypts."""
    from pkcs11 import Attribute, KDF, KeyType, Mechanism, MechanismFlag
    from pkcs11.mechanisms import GCMParams
    params = ec_params(s, "secp256r1", KeyType.EC)
    a_pub, a_priv = params.generate_keypair(store=False, capabilities=MechanismFlag.DERIVE)
    b_pub, b_priv = params.generate_keypair(store=False, capabilities=MechanismFlag.DERIVE)
    for kdf, shared in [(KDF.NULL, None), (KDF.SHA256, b"shared info")]:
        keys = []
        for priv, other in [(a_priv, b_pub), (b_priv, a_pub)]:
            keys.append(priv.derive_key(
                KeyType.AES, 256, capabilities=cipher_only(),
                mechanism_param=(kdf, shared, other[Attribute.EC_POINT])))
        data = os.urandom(48)
        iv = bytes(12)  # the token's IV, in front of the ciphertext
        ct = keys[0].encrypt(data, mechanism=Mechanism.AES_GCM,
                             mechanism_param=GCMParams(iv, b"", 128))
        pt = keys[1].decrypt(ct, mechanism=Mechanism.AES_GCM,
                             mechanism_param=GCMParams(iv, b"", 128))
        assert pt == data, kdf
        for k in keys:
            k.destroy()


def pkcs11_attr(name):
    from pkcs11 import Attribute
    return getattr(Attribute, name)


def worker(op, seconds, barrier, q):
    """One benchmark process: its own C_Initialize and session. Whatever
    goes wrong is sent back, and breaks the barrier so no other worker
    waits for this one forever."""
    import traceback
    try:
        import pkcs11
        lib = pkcs11.lib(MODULE)
        with open_session(lib) as s:
            f, check = operation(s, op)
            check(f())
            barrier.wait(timeout=START_WITHIN)
            n = 0
            cpu = time.process_time()
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                f()
                n += 1
            # This process's CPU time over the loop, every thread of it (the
            # module's included).
            q.put(("ok", n, time.process_time() - cpu))
    except BaseException:  # noqa: BLE001 - reported to the parent, then exit
        barrier.abort()
        q.put(("error", os.getpid(), traceback.format_exc()))


def open_session(lib):
    """A logged-in session on the token. SoftHSM2's file store, read by
    several processes at once, now and then shows one of them no token or
    fails its login while another opens it: asked again, it answers."""
    import pkcs11
    for attempt in range(20):
        try:
            return token(lib).open(user_pin=PIN, rw=True)
        except (pkcs11.exceptions.NoSuchToken, pkcs11.exceptions.GeneralError):
            if attempt == 19:
                raise
            time.sleep(0.05)


# Longest a worker waits for the others to be ready, and a run may take
# beyond its seconds, before the run is given up.
START_WITHIN = 60
RUN_SLACK = 120
# A run whose worker failed (SoftHSM2's file store refuses a process now
# and then while another opens it) is made again, at most this often.
ATTEMPTS = 3


def bench_once(op, procs, seconds):
    """(ops, cpu seconds) of one run, or the reason it failed."""
    barrier = mp.Barrier(procs)
    q = mp.Queue()
    ps = [mp.Process(target=worker, args=(op, seconds, barrier, q), daemon=True)
          for _ in range(procs)]
    for p in ps:
        p.start()
    results, errors = [], []
    deadline = time.monotonic() + seconds + RUN_SLACK
    try:
        while len(results) + len(errors) < procs:
            left = deadline - time.monotonic()
            if left <= 0:
                errors.append(f"no result within {seconds + RUN_SLACK} s")
                break
            try:
                item = q.get(timeout=left)
            except Exception:  # queue.Empty
                continue
            if item[0] == "ok":
                results.append(item[1:])
            else:
                errors.append(f"worker {item[1]}:\n{item[2]}")
    finally:
        for p in ps:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
    if errors:
        return None, "\n".join(errors)
    return results, None


def bench(op, procs, seconds):
    for attempt in range(1, ATTEMPTS + 1):
        results, error = bench_once(op, procs, seconds)
        if results is not None:
            break
        print(f"attempt {attempt} of {op} failed: {error}", file=sys.stderr)
    else:
        raise SystemExit(f"{op}: every attempt failed; the last: {error.strip().splitlines()[-1]}")
    total = sum(n for n, _ in results)
    cpu = sum(c for _, c in results)
    print(json.dumps({"op": op, "procs": procs, "seconds": seconds, "ops": total,
                      "per_second": total / seconds, "client_cpu_seconds": cpu}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check")
    sub.add_parser("setup")
    b = sub.add_parser("bench")
    b.add_argument("--op", choices=OPS, required=True)
    b.add_argument("--procs", type=int, default=1)
    b.add_argument("--seconds", type=float, default=5)
    args = ap.parse_args()
    if not MODULE or not PIN:
        raise SystemExit("set PKCS11_MODULE and PKCS11_PIN")
    if args.cmd == "check":
        check_all()
    elif args.cmd == "setup":
        import pkcs11
        with token(pkcs11.lib(MODULE)).open(user_pin=PIN, rw=True) as s:
            make_keys(s)
    else:
        bench(args.op, args.procs, args.seconds)


if __name__ == "__main__":
    sys.exit(main())
