//! OpenSSL 3 through the PKCS#11 engine (libp11, as Debian ships it) with
//! keys in the cluster: a self-signed CA certificate and a CSR, a
//! certificate the CA signs (verified by `openssl verify`), and `openssl
//! dgst -sign` with ECDSA, RSA PKCS#1 v1.5 and RSA-PSS, each verified with
//! the public key exported from the token.

mod common;

use common::{key_uri, run, Cluster};

#[test]
fn openssl_makes_a_ca_and_signs_with_cluster_keys() {
    let c = Cluster::start();
    c.pkcs11_tool(&[
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--label",
        "ca-ec",
        "--id",
        "11",
    ]);
    c.pkcs11_tool(&[
        "--keypairgen",
        "--key-type",
        "rsa:2048",
        "--label",
        "ca-rsa",
        "--id",
        "12",
    ]);

    for (label, id) in [("ca-ec", "11"), ("ca-rsa", "12")] {
        // A self-signed CA certificate with the key in the cluster.
        let ca = format!("{label}.pem");
        run(c
            .openssl()
            .args(["req", "-engine", "pkcs11", "-keyform", "engine", "-key"])
            .arg(key_uri(label))
            .args(["-new", "-x509", "-days", "30", "-subj"])
            .arg(format!("/CN={label} test CA"))
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .args(["-out", &ca]));
        let verified = run(c.command("openssl").args(["verify", "-CAfile", &ca, &ca]));
        assert!(verified.contains(": OK"), "{verified}");
        // A CSR signed by the cluster key checks out.
        let csr = format!("{label}.csr");
        run(c
            .openssl()
            .args(["req", "-engine", "pkcs11", "-keyform", "engine", "-key"])
            .arg(key_uri(label))
            .args(["-new", "-subj", "/CN=request", "-out", &csr]));
        let checked = run(c
            .command("openssl")
            .args(["req", "-in", &csr, "-verify", "-noout"]));
        assert!(
            checked.contains("verify OK") || checked.contains("self-signature ok"),
            "{checked}"
        );
        // The CA signs a certificate for a key made elsewhere.
        run(c.command("openssl").args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-subj",
            "/CN=leaf",
            "-out",
            "leaf.csr",
        ]));
        let leaf = format!("leaf-{label}.pem");
        run(c
            .openssl()
            .args([
                "x509",
                "-req",
                "-engine",
                "pkcs11",
                "-CAkeyform",
                "engine",
                "-CAkey",
            ])
            .arg(key_uri(label))
            .args(["-CA", &ca, "-in", "leaf.csr", "-days", "5", "-out", &leaf]));
        let verified = run(c.command("openssl").args(["verify", "-CAfile", &ca, &leaf]));
        assert!(verified.contains(": OK"), "{verified}");

        // The public key as the token gives it, for dgst -verify.
        c.public_key_pem(id, "pub.pem");
        std::fs::write(c.path("data"), b"release 1.2.3\n").expect("write");
        let mut forms: Vec<Vec<&str>> = vec![vec!["-sha256"], vec!["-sha384"]];
        if label == "ca-rsa" {
            forms.push(vec![
                "-sha256",
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:digest",
            ]);
            forms.push(vec![
                "-sha512",
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:digest",
            ]);
        }
        for form in forms {
            run(c
                .openssl()
                .args(["dgst", "-engine", "pkcs11", "-keyform", "engine", "-sign"])
                .arg(key_uri(label))
                .args(&form)
                .args(["-out", "data.sig", "data"]));
            let out = run(c
                .command("openssl")
                .args(["dgst", "-verify", "pub.pem", "-signature", "data.sig"])
                .args(&form)
                .arg("data"));
            assert!(out.contains("Verified OK"), "{label} {form:?}: {out}");
            // A changed file does not verify.
            std::fs::write(c.path("other"), b"release 1.2.4\n").expect("write");
            let out = common::output(
                c.command("openssl")
                    .args(["dgst", "-verify", "pub.pem", "-signature", "data.sig"])
                    .args(&form)
                    .arg("other"),
            );
            assert!(!out.status.success(), "{label} {form:?}");
        }
    }
}
