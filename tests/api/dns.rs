//! A target name that does not resolve (issue 16 item 6): one lookup per
//! negative TTL, no thread storm, requests fail at once as `kind="dns"`.
//!
//! No query may leave the machine: the sidecar runs in a private mount
//! namespace whose /etc/resolv.conf names a fake DNS server of this test on
//! a loopback address (answering NXDOMAIN and counting queries), and under
//! strace, whose record of every connect/send must show loopback only.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use crate::helpers::*;
use crate::scripted::{have_tools, metrics_of};

/// Answers every query on 127.0.x.y:53 with NXDOMAIN and counts them.
struct FakeDns {
    ip: String,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl FakeDns {
    fn start() -> FakeDns {
        // A loopback address of our own, so other tests' servers never clash.
        let pid = std::process::id();
        let ip = format!("127.{}.{}.{}", 53, (pid >> 8) % 250 + 1, pid % 250 + 1);
        let socket = UdpSocket::bind((ip.as_str(), 53)).expect("bind the fake DNS server");
        socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let (queries, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (count, stopped) = (queries.clone(), stop.clone());
        thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stopped.load(Ordering::SeqCst) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                if let Some(answer) = nxdomain(&buf[..n]) {
                    let _ = socket.send_to(&answer, from);
                }
            }
        });
        FakeDns { ip, queries, stop }
    }

    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The query's header and question, flagged as an answer with NXDOMAIN.
fn nxdomain(query: &[u8]) -> Option<Vec<u8>> {
    let mut end = 12;
    while *query.get(end)? != 0 {
        end += usize::from(query[end]) + 1;
    }
    end += 5; // the root label, QTYPE, QCLASS
    let mut answer = query.get(..end)?.to_vec();
    answer[2] = 0x81; // QR, RD
    answer[3] = 0x83; // RA, NXDOMAIN
    answer[6..12].fill(0); // no answer, authority or additional records
    Some(answer)
}

/// Process ids of `pid`'s children.
fn children(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.flatten().collect::<Vec<_>>());
    tasks
        .unwrap_or_default()
        .iter()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| c.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<u32>>())
        .collect()
}

#[test]
fn a_name_that_does_not_resolve_costs_one_lookup_per_interval_and_fails_fast_as_dns() {
    if !have_tools(&["unshare", "strace", "mount"]) {
        return;
    }
    let dns = FakeDns::start();
    // Plain targets and https ones: one client, one resolver.
    for scheme in ["http", "https"] {
        unresolvable(&dns, scheme);
    }
}

fn unresolvable(dns: &FakeDns, scheme: &str) {
    let queries_before = dns.queries();
    let dir = std::env::temp_dir().join(format!("trafficgen-dns-{}-{scheme}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let resolv = dir.join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {}\noptions attempts:1 timeout:1\n", dns.ip)).unwrap();
    let nsswitch = dir.join("nsswitch.conf");
    std::fs::write(&nsswitch, "hosts: files dns\n").unwrap();
    let trace = dir.join("trace");
    let script = format!(
        "mount --bind {} /etc/resolv.conf && mount --bind {} /etc/nsswitch.conf && \
         exec strace -f -qq -e trace=connect,sendto,sendmsg,sendmmsg -o {} \"$@\"",
        resolv.display(),
        nsswitch.display(),
        trace.display()
    );
    let url = format!("{scheme}://shop.trafficgen-test.invalid:8080");
    let env = sidecar_env(&url, &[("INITIAL_MODE", "overload"), ("WARMUP_SECS", "1"), ("STATS_INTERVAL_SECS", "0")]);
    let mut sidecar = start_wrapped(&["unshare", "-m", "sh", "-c", &script, "sh"], &[], &env);
    // strace is the process we hold; the sidecar is its child.
    let mut pid = 0;
    assert!(eventually(Duration::from_secs(5), || {
        pid = children(sidecar.pid()).first().copied().unwrap_or(0);
        pid != 0
    }));
    let baseline_threads = thread_count(pid);
    assert!(eventually(Duration::from_secs(10), || stat(&sidecar, "failed") >= 50), "{}", sidecar.output());
    let failed_before = stat(&sidecar, "failed");
    let mut most_threads = 0;
    for _ in 0..12 {
        most_threads = most_threads.max(thread_count(pid));
        thread::sleep(Duration::from_millis(250));
    }
    let status = sidecar.get_json("/status");
    let failed = status["stats"]["failed"].as_u64().unwrap();
    let queries = dns.queries() - queries_before;
    let samples = metrics_of(&sidecar);
    let dns_errors = sum(&samples, "trafficgen_request_errors_total", &[("kind", "dns")]);
    // End the sidecar by its PID; strace then ends by itself.
    let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    let _ = sidecar.terminate(Duration::from_secs(5));
    let log = sidecar.output();
    eprintln!(
        "unresolvable name, {scheme}: {failed} failed ({dns_errors} dns) in ~4 s at 100/s; {queries} DNS queries; threads {baseline_threads} -> at most {most_threads}"
    );

    assert!(failed >= failed_before + 200, "requests did not fail fast: {failed_before} then {failed}: {status}");
    assert_eq!(status["stats"]["successful"], 0);
    assert!(dns_errors >= failed as f64 - 5.0, "{dns_errors} of {failed} failures are kind=dns: {status}");
    // One lookup per 2 s (an A and an AAAA query each) over about 5 s.
    assert!((1..=12).contains(&queries), "{queries} DNS queries");
    assert!(most_threads <= baseline_threads + 2, "threads {baseline_threads} -> {most_threads}");
    let lines = log.lines().filter(|l| l.contains("does not resolve")).count();
    assert_eq!(lines, 1, "the resolution failure is logged once:\n{log}");

    // Nothing but loopback was contacted.
    let trace = std::fs::read_to_string(&trace).expect("strace output");
    let contacted: Vec<&str> = trace.lines().filter(|l| l.contains("sin_addr") || l.contains("sin6_addr")).collect();
    assert!(contacted.iter().any(|l| l.contains(&dns.ip)), "the fake server was not asked:\n{trace}");
    let elsewhere: Vec<&&str> = contacted
        .iter()
        .filter(|l| !(l.contains("inet_addr(\"127.") || l.contains("\"::1\"") || l.contains("::ffff:127.")))
        .collect();
    assert!(elsewhere.is_empty(), "traffic off loopback: {elsewhere:#?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
