//! Links `routerctl` with packed relative relocations (DT_RELR) where the C library
//! supports them (glibc 2.36 and later). A position-independent binary otherwise carries a
//! 24-byte entry for each of its ~46,000 pointers, 1.1 MB that the loader reads at every
//! start and that stayed resident: `serve`'s peak RSS is 1.5 MB lower packed
//! (BENCHMARKS.md). The Lambda functions are not built here (Lambda's glibc is older).
//!
//! Only for native builds: the host's glibc is the one checked, with `getconf`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    let packed = target == host && target.ends_with("-linux-gnu") && glibc_at_least(2, 36);
    if packed {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    // The test that checks the binary knows whether to expect it.
    println!(
        "cargo:rustc-env=ROUTERCTL_PACKED_RELOCS={}",
        u8::from(packed)
    );
}

/// `getconf GNU_LIBC_VERSION` prints `glibc 2.36`.
fn glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    found >= (major, minor)
}
