//! How `routerctl` is built, checked on the binary: its allocator and its relocations
//! (both chosen for `serve`'s speed and memory, BENCHMARKS.md).

#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::process::Command;

/// jemalloc is the process's malloc (C code included: the override exports `malloc`), and it
/// starts with the settings compiled into `routerctl`; `MALLOC_CONF` is read after them.
#[test]
fn jemalloc_is_the_allocator_with_routerctls_settings() {
    let out = Command::new(env!("CARGO_BIN_EXE_routerctl"))
        .arg("--help")
        .env("MALLOC_CONF", "confirm_conf:true")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for setting in [
        "narenas:1",
        "tcache_max:1024",
        "tcache_nslots_small_max:64",
        "dirty_decay_ms:500",
        "muzzy_decay_ms:0",
        "background_thread:true",
    ] {
        assert!(
            stderr.contains(&format!("<jemalloc>: -- Set conf value: {setting}")),
            "{setting} not set: {stderr}"
        );
    }
    // The environment's settings come last, so they win.
    let ours = stderr.find("global variable malloc_conf").unwrap();
    let env = stderr.find("environment variable MALLOC_CONF").unwrap();
    assert!(ours < env, "{stderr}");
}

/// The ELF dynamic section's tags (`PT_DYNAMIC`'s entries), read from the file.
fn dynamic_tags(elf: &[u8]) -> Vec<u64> {
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    assert_eq!(&elf[..5], b"\x7fELF\x02", "a 64-bit ELF file");
    let (phoff, phentsize, phnum) = (u64_at(0x20) as usize, u16_at(0x36), u16_at(0x38));
    let dynamic = (0..phnum)
        .map(|i| phoff + i * phentsize)
        .find(|&ph| u32::from_le_bytes(elf[ph..ph + 4].try_into().unwrap()) == 2)
        .expect("a PT_DYNAMIC segment");
    let (offset, size) = (u64_at(dynamic + 8) as usize, u64_at(dynamic + 32) as usize);
    (offset..offset + size)
        .step_by(16)
        .map(u64_at)
        .take_while(|&tag| tag != 0)
        .collect()
}

/// Relative relocations are packed (DT_RELR) when the build script found a glibc that
/// reads them; the relocation count left unpacked is then small.
#[test]
fn relative_relocations_are_packed_where_glibc_supports_it() {
    const DT_RELR: u64 = 36;
    let elf = std::fs::read(env!("CARGO_BIN_EXE_routerctl")).unwrap();
    let tags = dynamic_tags(&elf);
    assert!(
        tags.contains(&1),
        "a DT_NEEDED entry: the dynamic section was read"
    );
    let packed = env!("ROUTERCTL_PACKED_RELOCS") == "1";
    assert_eq!(tags.contains(&DT_RELR), packed, "{tags:x?}");
}
