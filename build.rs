//! Link settings of the `ringside` executable.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    pack_relative_relocations();
    gather_the_code_that_runs();
}

/// Links the functions that run at start-up, idle and in a call together, before the rest of
/// the text (`link/text-order.ld`, written by `scripts/text-order`). The kernel maps a code page
/// fault's whole 64 KiB neighbourhood, and those functions, scattered over the text, made most
/// of it resident (docs/decisions.md, "Resident memory"). The script names functions without
/// their hashes where it can; a name that matches nothing leaves that function where it was.
/// Release builds (and benches) for the x86_64 GNU/Linux host only, whose linker (rust-lld)
/// it was measured with; `RINGSIDE_TEXT_ORDER=off` links without it.
fn gather_the_code_that_runs() {
    const SCRIPT: &str = "link/text-order.ld";
    println!("cargo:rerun-if-changed={SCRIPT}");
    println!("cargo:rerun-if-env-changed=RINGSIDE_TEXT_ORDER");
    let var = |name| std::env::var(name).unwrap_or_default();
    if var("PROFILE") != "release"
        || var("TARGET") != "x86_64-unknown-linux-gnu"
        || var("HOST") != var("TARGET")
        || var("RINGSIDE_TEXT_ORDER") == "off"
    {
        return;
    }
    let script = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join(SCRIPT);
    if script.is_file() {
        println!(
            "cargo:rustc-link-arg-bin=ringside=-Wl,-T,{}",
            script.display()
        );
    }
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
