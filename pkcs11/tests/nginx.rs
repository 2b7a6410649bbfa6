//! TLS offload: nginx (Debian's) serves HTTPS with its private keys in
//! the cluster, through OpenSSL's PKCS#11 engine, for an ECDSA P-256 and
//! an RSA-2048 key; curl fetches and verifies each page; then a node of
//! the cluster is killed and curl keeps getting pages (every handshake is
//! a signature by the cluster).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_tcp_port, key_uri, output, program, run, text, Cluster};

/// nginx in the foreground; stopped when dropped: asked to stop (SIGTERM,
/// which the master passes to its workers), killed if it has not within
/// ten seconds.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fetch(c: &Cluster, port: u16, ca: &str) -> String {
    let out = output(c.command("curl").args([
        "-sS",
        "--max-time",
        "30",
        "--cacert",
        ca,
        &format!("https://127.0.0.1:{port}/"),
    ]));
    assert!(out.status.success(), "curl on port {port}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn nginx_serves_https_with_keys_in_the_cluster_while_a_node_dies() {
    let mut c = Cluster::start();
    let nginx = program("nginx", "nginx");
    program("curl", "curl");
    let root = c.path("www");
    std::fs::create_dir_all(&root).expect("www");
    std::fs::write(
        root.join("index.html"),
        "served with a key in the cluster\n",
    )
    .expect("page");
    std::fs::create_dir_all(c.path("nginx-tmp")).expect("tmp");

    let mut servers = String::new();
    let mut sites = Vec::new();
    for (label, key_type) in [("tls-ec", "EC:prime256v1"), ("tls-rsa", "rsa:2048")] {
        c.pkcs11_tool(&["--keypairgen", "--key-type", key_type, "--label", label]);
        let cert = format!("{label}.pem");
        run(c
            .openssl()
            .args(["req", "-engine", "pkcs11", "-keyform", "engine", "-key"])
            .arg(key_uri(label))
            .args(["-new", "-x509", "-days", "2", "-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1", "-out", &cert]));
        let port = free_tcp_port();
        servers.push_str(&format!(
            "  server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_protocols TLSv1.2 TLSv1.3;\n    \
             ssl_certificate {};\n    ssl_certificate_key \"engine:pkcs11:{}\";\n    root {};\n  }}\n",
            c.path(&cert).display(),
            key_uri(label),
            root.display()
        ));
        sites.push((label, port, c.path(&cert).display().to_string()));
    }
    let tmp = c.path("nginx-tmp").display().to_string();
    let conf = format!(
        "daemon off;\nmaster_process on;\nworker_processes 2;\nuser root;\npid {dir}/nginx.pid;\n\
         error_log {dir}/nginx-error.log info;\nenv HSM_CLUSTER;\nenv OPENSSL_CONF;\nssl_engine pkcs11;\n\
         events {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {tmp};\n  \
         proxy_temp_path {tmp};\n  fastcgi_temp_path {tmp};\n  uwsgi_temp_path {tmp};\n  scgi_temp_path {tmp};\n\
         {servers}}}\n",
        dir = c.dir.path().display(),
    );
    std::fs::write(c.path("nginx.conf"), conf).expect("nginx.conf");
    let log = std::fs::File::create(c.path("nginx.out")).expect("log");
    let mut cmd = Command::new(nginx);
    cmd.env("HSM_CLUSTER", c.client_config())
        .env("OPENSSL_CONF", c.openssl_conf())
        .arg("-e")
        .arg(c.path("nginx-error.log"))
        .arg("-p")
        .arg(c.dir.path())
        .arg("-c")
        .arg(c.path("nginx.conf"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    let server = Nginx(cmd.spawn().expect("start nginx"));

    // Up once both ports answer.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (label, port, cert) in &sites {
        loop {
            let out = output(c.command("curl").args([
                "-sS",
                "--max-time",
                "10",
                "--cacert",
                cert,
                &format!("https://127.0.0.1:{port}/"),
            ]));
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "nginx does not serve {label}: {}\n{}\n{}",
                text(&out),
                std::fs::read_to_string(c.path("nginx.out")).unwrap_or_default(),
                std::fs::read_to_string(c.path("nginx-error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    for (_, port, cert) in &sites {
        for _ in 0..5 {
            assert_eq!(fetch(&c, *port, cert), "served with a key in the cluster\n");
        }
    }
    // The certificate curl checked is the one whose key is in the cluster.
    let verbose = run(c.command("curl").args([
        "-sS",
        "-v",
        "--cacert",
        &sites[0].2,
        &format!("https://127.0.0.1:{}/", sites[0].1),
    ]));
    assert!(verbose.contains("SSL certificate verify ok"), "{verbose}");

    // A node dies; every handshake after it is still signed.
    c.kill(1);
    for round in 0..10 {
        for (label, port, cert) in &sites {
            let page = fetch(&c, *port, cert);
            assert_eq!(
                page, "served with a key in the cluster\n",
                "{label} round {round}"
            );
        }
    }
    drop(server);
}
