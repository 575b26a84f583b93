//! Link settings of the `ringside` executable.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    pack_relative_relocations();
}

/// Packs the executable's relative relocations (`-z pack-relative-relocs`, DT_RELR): a
/// position-independent executable carries one 24-byte `.rela.dyn` entry for each pointer in
/// its data (vtables, string tables), ~20,000 of them, which the dynamic loader reads at every
/// start and which then stay resident (about 0.5 MiB). RELR encodes them in a few KiB. The
/// loader must know RELR: glibc 2.36 or newer (Debian 12). Only when building on such a Linux
/// for itself, so a build on an older glibc still runs where it was built.
fn pack_relative_relocations() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    if target != host || !target.ends_with("-linux-gnu") {
        return;
    }
    let version = std::process::Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .unwrap_or_default();
    // "glibc 2.36"
    let mut numbers = version
        .trim()
        .strip_prefix("glibc ")
        .unwrap_or_default()
        .split('.')
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let major = numbers.next().unwrap_or(0);
    let minor = numbers.next().unwrap_or(0);
    if (major, minor) >= (2, 36) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
