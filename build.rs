//! Build script: embeds a model in the binary when `EDGENET_EMBED_MODEL` names an ONNX file at
//! build time, so that an appliance is one file (`edgenet run --source -` then needs no model
//! argument). Without the variable nothing is embedded and nothing changes.
//!
//! For the `device` profile on x86-64 Linux and for the Raspberry Pi binaries (aarch64 musl,
//! armv7 gnueabihf) it also hands the linker the order of the functions a device run executes
//! (`scripts/symbol-order/`, written by `scripts/symbol_order.py`), so that they sit together
//! and the rest of the code stays on disk: see `symbol_order`.

use std::path::PathBuf;

fn main() {
    symbol_order();
    println!("cargo::rustc-check-cfg=cfg(edgenet_embedded_model)");
    println!("cargo::rerun-if-env-changed=EDGENET_EMBED_MODEL");
    let Some(path) = std::env::var_os("EDGENET_EMBED_MODEL").filter(|p| !p.is_empty()) else {
        return;
    };
    let path = PathBuf::from(path);
    let path = match std::fs::canonicalize(&path) {
        Ok(p) => p,
        Err(e) => {
            // A clear build error naming the variable and the file, not a confusing
            // `include_bytes!` failure later.
            println!("cargo::error=EDGENET_EMBED_MODEL={}: {e}", path.display());
            return;
        }
    };
    let meta = match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => m,
        Ok(_) => {
            println!("cargo::error=EDGENET_EMBED_MODEL={}: not a file", path.display());
            return;
        }
        Err(e) => {
            println!("cargo::error=EDGENET_EMBED_MODEL={}: {e}", path.display());
            return;
        }
    };
    let Some(utf8) = path.to_str() else {
        println!("cargo::error=EDGENET_EMBED_MODEL={}: the path must be UTF-8", path.display());
        return;
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("model.onnx");
    println!("cargo::rerun-if-changed={utf8}");
    println!("cargo::rustc-cfg=edgenet_embedded_model");
    println!("cargo::rustc-env=EDGENET_EMBEDDED_MODEL_PATH={utf8}");
    println!("cargo::rustc-env=EDGENET_EMBEDDED_MODEL_NAME={name}");
    println!("cargo::warning=embedding {utf8} ({} bytes) as the default model", meta.len());
}

/// The `device` profile on `x86_64-unknown-linux-gnu`, `aarch64-unknown-linux-musl` and
/// `armv7-unknown-linux-gnueabihf`: `-Wl,--symbol-ordering-file` with the list in
/// `scripts/symbol-order/` (if there is one for the target), for the `edgenet` binary. The kernel maps code 64 KiB around each page a process
/// faults on, so executed functions scattered over the binary make most of its code resident;
/// listed first, they take about 1.5 MiB. The x86-64 target links with lld (Rust's default
/// there), which takes the option; the Pi targets are switched to the toolchain's lld here
/// ([`use_rust_lld`]). Names the list has and the binary lacks are skipped silently.
/// `EDGENET_NO_SYMBOL_ORDER=1` turns the list off (to measure without it). The x86-64 build
/// also packs its relative relocations (RELR).
fn symbol_order() {
    println!("cargo::rerun-if-env-changed=EDGENET_NO_SYMBOL_ORDER");
    // `scripts/symbol_order.py` reads the link map of the device build it lists the functions of.
    println!("cargo::rerun-if-env-changed=EDGENET_SYMBOL_MAP");
    if let Some(map) = std::env::var_os("EDGENET_SYMBOL_MAP").filter(|m| !m.is_empty()).and_then(|m| m.into_string().ok()) {
        println!("cargo::rustc-link-arg-bins=-Wl,-Map={map}");
    }
    let target = std::env::var("TARGET").unwrap_or_default();
    if !["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-musl", "armv7-unknown-linux-gnueabihf"].contains(&target.as_str()) {
        return;
    }
    // OUT_DIR is <target dir>/[<triple>/]<profile>/build/<package>-<hash>/out.
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    if out_dir.ancestors().nth(3).and_then(|p| p.file_name()).is_none_or(|p| p != "device") {
        return;
    }
    // The Pi binaries are linked by the GNU cross gccs, whose linker (GNU ld) has no
    // `--symbol-ordering-file`: their device builds link with the lld that ships with Rust
    // (`gcc-ld/ld.lld` in the toolchain, which runs `rust-lld`), with or without a list, so that
    // the build `scripts/symbol_order.py` lists is laid out by the same linker.
    if target != "x86_64-unknown-linux-gnu" && !use_rust_lld() {
        return;
    }
    if std::env::var_os("EDGENET_NO_SYMBOL_ORDER").is_some_and(|v| !v.is_empty()) {
        return;
    }
    let list = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default()).join("scripts/symbol-order").join(format!("{target}.txt"));
    println!("cargo::rerun-if-changed={}", list.display());
    let Some(path) = list.to_str().filter(|_| list.is_file()) else {
        return;
    };
    println!("cargo::rustc-link-arg-bins=-Wl,--symbol-ordering-file={path}");
    println!("cargo::rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    // RELR relative relocations: 8 KiB instead of 0.8 MiB of `.rela.dyn`, which the dynamic
    // loader reads whole at start-up. Only against a glibc that has them (2.36 or later): the
    // linker then marks the binary as needing one, and an older glibc refuses it with a clear
    // error instead of running it unrelocated.
    if target != "x86_64-unknown-linux-gnu" {
        return;
    }
    let glibc_has_relr = ["/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6", "/usr/lib64/libc.so.6"]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .is_some_and(|libc| libc.windows(17).any(|w| w == b"GLIBC_ABI_DT_RELR"));
    if glibc_has_relr {
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Links the binaries with the toolchain's lld through the C compiler driver
/// (`-fuse-ld=lld -B <sysroot>/lib/rustlib/<host>/bin/gcc-ld`), if the toolchain has it; else
/// warns and returns false (the build then links with the driver's own linker, unordered).
fn use_rust_lld() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let host = std::env::var("HOST").unwrap_or_default();
    let sysroot = std::process::Command::new(&rustc).args(["--print", "sysroot"]).output().ok().filter(|o| o.status.success());
    let Some(sysroot) = sysroot.and_then(|o| String::from_utf8(o.stdout).ok()) else {
        println!("cargo::warning=`{rustc} --print sysroot` failed: the device binary is linked without its function order");
        return false;
    };
    let gcc_ld = PathBuf::from(sysroot.trim()).join("lib/rustlib").join(host).join("bin/gcc-ld");
    if !gcc_ld.join("ld.lld").is_file() {
        println!("cargo::warning={} has no ld.lld: the device binary is linked without its function order", gcc_ld.display());
        return false;
    }
    println!("cargo::rustc-link-arg-bins=-fuse-ld=lld");
    println!("cargo::rustc-link-arg-bins=-B{}", gcc_ld.display());
    true
}
