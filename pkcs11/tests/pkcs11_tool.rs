//! OpenSC's `pkcs11-tool` and GnuTLS's `p11tool` use the cluster as a
//! token: its own conformance test (`--test`) passes, keys are generated,
//! listed, used to sign, and the signatures verify in OpenSSL with the
//! public keys read from the token; an outside party's public key written
//! to the token verifies that party's signatures.

mod common;

use common::{module, output, program, run, text, Cluster, PIN};

#[test]
fn pkcs11_tool_generates_lists_signs_and_passes_its_own_test() {
    let c = Cluster::start();
    let slots = run(c
        .command(program("pkcs11-tool", "opensc"))
        .arg("--module")
        .arg(module())
        .arg("--list-slots"));
    assert!(slots.contains("token label        : hsm "), "{slots}");
    assert!(slots.contains("login required"), "{slots}");

    c.pkcs11_tool(&[
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--label",
        "web",
        "--id",
        "01",
    ]);
    c.pkcs11_tool(&[
        "--keypairgen",
        "--key-type",
        "rsa:2048",
        "--label",
        "code",
        "--id",
        "02",
    ]);
    let objects = c.pkcs11_tool(&["--list-objects"]);
    for expected in [
        "Private Key Object; EC",
        "Public Key Object; EC  EC_POINT 256 bits",
        "Private Key Object; RSA",
        "Public Key Object; RSA 2048 bits",
        "label:      web",
        "label:      code",
    ] {
        assert!(
            objects.contains(expected),
            "{expected} missing from:\n{objects}"
        );
    }
    // The same objects through the hsm command line: one key each.
    let keys = run(c
        .hsm()
        .args(["key", "list"])
        .env("HSM_USER", common::USER)
        .env("HSM_PASSWORD", common::PASSWORD));
    assert!(
        keys.contains("\"web\"") && keys.contains("\"code\""),
        "{keys}"
    );

    // The tool's own conformance test: random, digests, RSA signatures in
    // every listed mechanism (checked with OpenSSL), verification, OAEP.
    let test = c.pkcs11_tool(&["--test"]);
    assert!(test.contains("No errors"), "{test}");
    assert!(
        test.contains("all 4 signature functions seem to work"),
        "{test}"
    );

    // Sign with each key; OpenSSL verifies with the public key read back.
    std::fs::write(c.path("msg"), b"signed through pkcs11-tool\n").expect("write");
    for (id, mechanism, digest, extra) in [
        (
            "01",
            "ECDSA-SHA256",
            "-sha256",
            &["--signature-format", "openssl"][..],
        ),
        ("02", "SHA256-RSA-PKCS", "-sha256", &[][..]),
        (
            "02",
            "SHA384-RSA-PKCS-PSS",
            "-sha384",
            &["--mgf", "MGF1-SHA384", "--salt-len", "48"][..],
        ),
    ] {
        let mut args = vec![
            "--sign", "--id", id, "-m", mechanism, "-i", "msg", "-o", "sig",
        ];
        args.extend_from_slice(extra);
        c.pkcs11_tool(&args);
        c.public_key_pem(id, "pub.pem");
        let mut verify = c.command("openssl");
        verify.args(["dgst", digest, "-verify", "pub.pem", "-signature", "sig"]);
        if mechanism.contains("PSS") {
            verify.args([
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:digest",
            ]);
        }
        let out = run(verify.arg("msg"));
        assert!(out.contains("Verified OK"), "{mechanism}: {out}");
        // And the token verifies its own signature.
        let mut args = vec![
            "--verify",
            "--id",
            id,
            "-m",
            mechanism,
            "-i",
            "msg",
            "--signature-file",
            "sig",
        ];
        args.extend_from_slice(extra);
        let ok = c.pkcs11_tool(&args);
        assert!(ok.contains("Signature is valid"), "{mechanism}: {ok}");
    }

    // A public key alone, written to the token: an outside party's P-256
    // key (made by OpenSSL, its private half never in the cluster)
    // verifies that party's signatures, and shows as a public key object
    // with no private key beside it.
    run(c.command("openssl").args([
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "outside.pem",
    ]));
    run(c.command("openssl").args([
        "pkey",
        "-in",
        "outside.pem",
        "-pubout",
        "-outform",
        "DER",
        "-out",
        "outside.der",
    ]));
    run(c.command("openssl").args([
        "dgst",
        "-sha256",
        "-sign",
        "outside.pem",
        "-out",
        "osig",
        "msg",
    ]));
    c.pkcs11_tool(&[
        "--write-object",
        "outside.der",
        "--type",
        "pubkey",
        "--id",
        "09",
        "--label",
        "outside",
    ]);
    let ok = c.pkcs11_tool(&[
        "--verify",
        "--id",
        "09",
        "-m",
        "ECDSA-SHA256",
        "--signature-format",
        "openssl",
        "-i",
        "msg",
        "--signature-file",
        "osig",
    ]);
    assert!(ok.contains("Signature is valid"), "{ok}");
    let objects = c.pkcs11_tool(&["--list-objects"]);
    let with_id: Vec<&str> = objects
        .split("Object;")
        .zip(objects.split("Object;").skip(1))
        .filter(|(_, body)| body.contains("ID:         09"))
        .map(|(head, _)| head.lines().last().unwrap_or_default())
        .collect();
    assert_eq!(with_id, ["Public Key "], "{objects}");
    let keys = run(c
        .hsm()
        .args(["key", "list"])
        .env("HSM_USER", common::USER)
        .env("HSM_PASSWORD", common::PASSWORD));
    assert!(keys.contains("public-imported"), "{keys}");
    // It signs nothing: there is no private key to sign with.
    let refused = output(
        c.command(program("pkcs11-tool", "opensc"))
            .arg("--module")
            .arg(module())
            .args(["--login", "--pin", PIN])
            .args(["--sign", "--id", "09", "-m", "ECDSA-SHA256", "-i", "msg"]),
    );
    assert!(!refused.status.success(), "{}", text(&refused));
    c.pkcs11_tool(&["--delete-object", "--type", "pubkey", "--id", "09"]);
    let objects = c.pkcs11_tool(&["--list-objects"]);
    assert!(!objects.contains("outside"), "{objects}");

    // A wrong password is refused as PKCS#11 says.
    let wrong = output(
        c.command(program("pkcs11-tool", "opensc"))
            .arg("--module")
            .arg(module())
            .args(["--login", "--pin", "app:not-the-password", "--list-objects"]),
    );
    assert!(!wrong.status.success());
    assert!(
        text(&wrong).contains("CKR_PIN_INCORRECT"),
        "{}",
        text(&wrong)
    );

    // GnuTLS's p11tool lists the token and, logged in, its keys.
    let p11tool = program("p11tool", "gnutls-bin");
    let tokens = run(c
        .command(&p11tool)
        .arg("--provider")
        .arg(module())
        .arg("--list-tokens"));
    assert!(tokens.contains("Manufacturer: hsm-cluster"), "{tokens}");
    let all = run(c
        .command(&p11tool)
        .arg("--provider")
        .arg(module())
        .args(["--login", "--list-all", "pkcs11:manufacturer=hsm-cluster"])
        .env("GNUTLS_PIN", PIN));
    assert!(
        all.contains("Label: web") && all.contains("Label: code"),
        "{all}"
    );
    assert!(all.contains("Type: Private key"), "{all}");
}
