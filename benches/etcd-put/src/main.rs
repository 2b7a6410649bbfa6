//! `hsm-etcd-put --endpoint URL --clients N --seconds S --val-size B`
//!
//! N tasks share one gRPC connection (as `etcd benchmark put --conns 1`
//! does) and each puts B-byte values under keys of its own, one after
//! another, for S seconds. Prints one JSON line:
//! `{"ops": .., "ops_per_s": .., "p50_ms": .., "p99_ms": .., "errors": ..}`.
//! Only the puts that completed within the time count.

use std::time::{Duration, Instant};

use etcd_client::Client;

struct Args {
    endpoint: String,
    clients: usize,
    seconds: f64,
    val_size: usize,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        endpoint: "http://127.0.0.1:2379".into(),
        clients: 1,
        seconds: 5.0,
        val_size: 256,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--endpoint" => a.endpoint = value,
            "--clients" => a.clients = value.parse().map_err(|e| bad(&e))?,
            "--seconds" => a.seconds = value.parse().map_err(|e| bad(&e))?,
            "--val-size" => a.val_size = value.parse().map_err(|e| bad(&e))?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if a.clients == 0 || !(a.seconds > 0.0 && a.seconds <= 600.0) {
        return Err("--clients must be at least 1 and --seconds in (0, 600]".into());
    }
    Ok(a)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("hsm-etcd-put: {e}");
            std::process::exit(2);
        }
    };
    let client = match Client::connect([a.endpoint.as_str()], None).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hsm-etcd-put: cannot connect to {}: {e}", a.endpoint);
            std::process::exit(1);
        }
    };
    let value = vec![b'v'; a.val_size];
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(a.seconds);
    let tasks: Vec<_> = (0..a.clients)
        .map(|c| {
            let mut kv = client.kv_client();
            let value = value.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                let mut i = 0u64;
                while Instant::now() < end {
                    let key = format!("bench/{c}/{}", i % 1000);
                    i += 1;
                    let t = Instant::now();
                    match kv.put(key, value.clone(), None).await {
                        Ok(_) if Instant::now() <= end => latencies.push(t.elapsed()),
                        Ok(_) => {}
                        Err(_) => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    all.sort_unstable();
    let elapsed = a.seconds;
    println!(
        "{{\"ops\": {}, \"ops_per_s\": {:.1}, \"p50_ms\": {:.3}, \"p99_ms\": {:.3}, \"errors\": {}}}",
        all.len(),
        all.len() as f64 / elapsed,
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        errors
    );
}
