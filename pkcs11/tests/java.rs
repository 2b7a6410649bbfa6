//! Java through SunPKCS11 (the JDK's own PKCS#11 provider) with a config
//! pointing at the module: `keytool` makes key pairs with self-signed
//! certificates on the token (EC generated in the cluster; RSA generated
//! by Java and imported, as SunPKCS11 does for RSA), `keytool -list` shows
//! them, and `jarsigner` signs a jar with each, which `jarsigner -verify`
//! accepts.

mod common;

use common::{module, program, run, Cluster, PIN};

#[test]
fn keytool_lists_and_jarsigner_signs_with_cluster_keys() {
    let c = Cluster::start();
    let keytool = program("keytool", "default-jdk-headless");
    let jarsigner = program("jarsigner", "default-jdk-headless");
    let jar = program("jar", "default-jdk-headless");
    // Keys Java generates on the token are token objects, kept.
    std::fs::write(
        c.path("java.cfg"),
        format!(
            "name = hsm\nlibrary = {}\nslot = 0\nattributes(generate, *, *) = {{\n  CKA_TOKEN = true\n}}\n",
            module().display()
        ),
    )
    .expect("java.cfg");
    let store = |cmd: &mut std::process::Command| {
        cmd.args(["-keystore", "NONE", "-storetype", "PKCS11"])
            .args(["-providerClass", "sun.security.pkcs11.SunPKCS11"])
            .args(["-providerArg", "java.cfg", "-storepass", PIN]);
    };
    for (alias, args) in [
        (
            "ec-signer",
            &[
                "-keyalg",
                "EC",
                "-groupname",
                "secp256r1",
                "-sigalg",
                "SHA256withECDSA",
            ][..],
        ),
        (
            "rsa-signer",
            &[
                "-keyalg",
                "RSA",
                "-keysize",
                "2048",
                "-sigalg",
                "SHA256withRSA",
            ][..],
        ),
    ] {
        let mut cmd = c.command(&keytool);
        cmd.args(["-genkeypair", "-alias", alias, "-dname"])
            .arg(format!("CN={alias}"))
            .args(args);
        store(&mut cmd);
        run(&mut cmd);
    }
    let mut list = c.command(&keytool);
    list.arg("-list");
    store(&mut list);
    let listed = run(&mut list);
    for alias in ["ec-signer", "rsa-signer"] {
        assert!(
            listed.contains(&format!("{alias}, PrivateKeyEntry")),
            "{listed}"
        );
    }
    assert!(
        listed.contains("Your keystore contains 2 entries"),
        "{listed}"
    );

    std::fs::create_dir_all(c.path("content")).expect("dir");
    std::fs::write(c.path("content/release.txt"), "release 1.0\n").expect("write");
    for alias in ["ec-signer", "rsa-signer"] {
        let signed = format!("{alias}.jar");
        run(c
            .command(&jar)
            .args(["cf", &signed, "-C", "content", "release.txt"]));
        let mut sign = c.command(&jarsigner);
        store(&mut sign);
        run(sign.args([&signed, alias]));
        // Verified with the certificate in the jar, no token involved.
        let verified = run(c
            .command(&jarsigner)
            .args(["-verify", "-verbose", "-certs", &signed]));
        assert!(verified.contains("jar verified."), "{alias}: {verified}");
        assert!(
            verified.contains(&format!("CN={alias}")),
            "{alias}: {verified}"
        );
    }
    // The certificates are on the token for every application: the
    // command line sees them on the keys.
    let keys = run(c
        .hsm()
        .args(["key", "list"])
        .env("HSM_USER", common::USER)
        .env("HSM_PASSWORD", common::PASSWORD));
    assert!(
        keys.contains("\"generated\"") && keys.contains("\"imported\""),
        "{keys}"
    );
}
