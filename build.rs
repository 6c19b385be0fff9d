//! Release builds link the functions a sidecar runs next to each other.
//!
//! Most of trafficgen's resident memory is its own code: the kernel maps
//! 64 KiB around each code page it faults in, so the two thousand functions
//! a sidecar runs, spread over 7 MB of text, kept 6 MiB of it resident. Laid
//! out first, in the order of `link/hot-functions.txt` (written by
//! `bench/hot_functions.py` from a run under callgrind), they take about
//! 2 MiB. lld takes the list as `--symbol-ordering-file`; a name it does not
//! find is skipped, so a stale list costs memory, never correctness. Set
//! `TRAFFICGEN_LINK_ORDER=0` to link without it.

use std::env;
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link/hot-functions.txt");
    println!("cargo:rerun-if-env-changed=TRAFFICGEN_LINK_ORDER");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    let release = env::var("PROFILE").is_ok_and(|p| p == "release");
    let off = env::var("TRAFFICGEN_LINK_ORDER").is_ok_and(|v| v == "0");
    if !release || off || !links_with_lld() {
        return;
    }
    let list = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join("link/hot-functions.txt");
    if !list.is_file() {
        println!("cargo:warning=link/hot-functions.txt is missing: linking in the default order");
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}", list.display());
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}

/// rustc links x86_64 Linux binaries with its own lld since 1.90, unless a
/// linker or linker flags of one's own are set; other linkers do not know
/// the option, so they get the default order.
fn links_with_lld() -> bool {
    if env::var("TARGET").map_or(true, |t| t != "x86_64-unknown-linux-gnu") {
        return false;
    }
    if env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some() {
        return false;
    }
    // `-C linker=…`, `-C linker-flavor=…`, `-C link-arg=-fuse-ld=…`.
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if flags.contains("linker=") || flags.contains("linker-flavor") || flags.contains("fuse-ld") {
        return false;
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("--version").output() else { return false };
    let version = String::from_utf8_lossy(&out.stdout);
    // "rustc 1.95.0 (…)": the minor version.
    let minor = version.split_whitespace().nth(1).and_then(|v| v.split('.').nth(1)).and_then(|m| m.parse::<u32>().ok());
    minor.is_some_and(|m| m >= 90)
}
