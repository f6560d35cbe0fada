//! The kernel sets and the one place where CPU features are detected.

use std::fmt;
use std::sync::OnceLock;

/// A family of micro-kernels for one instruction set. Every set computes the same integers:
/// the choice changes speed, never results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelSet {
    /// Plain Rust (auto-vectorised by the compiler for the build's baseline): runs everywhere,
    /// and is the reference every other set is tested against.
    Portable,
    /// x86-64 with AVX2 (`vpmaddwd` on i16 pairs).
    Avx2,
    /// x86-64 with AVX-512 (F, BW, VL, VBMI) and VNNI: the dense GEMM and the depthwise
    /// convolution on `vpdpbusd` (64 int8 multiply-adds per zmm instruction, activations
    /// shifted to u8), the rest AVX2's. Ice Lake and later Intel CPUs, AMD Zen 4 and later
    /// (Cascade Lake has VNNI but not VBMI: it runs `avx2`).
    Avx512Vnni,
    /// NEON: on aarch64 ARMv8.0 (Raspberry Pi 3/4, Cortex-A53/A72), widening multiply-accumulate
    /// (`smull`/`smlal2` into i16, `sadalp` into i32) on int8 operands; on armv7 (32-bit
    /// Raspberry Pi OS), when the CPU has NEON with 32 double registers, the same products in
    /// the dense GEMM (`vmull`/`vmlal`/`vpadal`) and the depthwise convolution, the element-wise
    /// kernels portable.
    Neon,
    /// aarch64 with the ARMv8.2 dot product (Raspberry Pi 5, Cortex-A76): `sdot`, 16 int8
    /// multiply-adds per instruction; NEON for what has no dot-product form.
    Dotprod,
}

/// An architecture edgenet's kernels are compiled for: what a [`KernelSet`] means depends on it
/// (`neon` is one set of kernels on aarch64 and another on armv7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// x86-64.
    X86_64,
    /// 64-bit ARM (Raspberry Pi 3, 4 and 5 with a 64-bit OS).
    Aarch64,
    /// 32-bit ARM with NEON (32-bit Raspberry Pi OS).
    Armv7,
    /// Anything else: portable kernels only.
    Other,
}

impl Arch {
    /// The architecture this binary was compiled for.
    #[cfg(target_arch = "x86_64")]
    pub const HOST: Arch = Arch::X86_64;
    /// The architecture this binary was compiled for.
    #[cfg(target_arch = "aarch64")]
    pub const HOST: Arch = Arch::Aarch64;
    /// The architecture this binary was compiled for.
    #[cfg(target_arch = "arm")]
    pub const HOST: Arch = Arch::Armv7;
    /// The architecture this binary was compiled for.
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm")))]
    pub const HOST: Arch = Arch::Other;

    /// Its name as Rust's target triples spell it.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::Armv7 => "armv7",
            Arch::Other => std::env::consts::ARCH,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The environment variable that forces a kernel set (`portable`, `avx2`, `avx512vnni`, `neon`, `dotprod`).
pub const KERNELS_ENV: &str = "EDGENET_KERNELS";

impl KernelSet {
    /// Every set, in order of preference within an architecture.
    pub const ALL: [KernelSet; 5] = [KernelSet::Dotprod, KernelSet::Neon, KernelSet::Avx512Vnni, KernelSet::Avx2, KernelSet::Portable];

    /// The set's name, as accepted by [`KernelSet::parse`].
    pub fn name(self) -> &'static str {
        match self {
            KernelSet::Portable => "portable",
            KernelSet::Avx2 => "avx2",
            KernelSet::Avx512Vnni => "avx512vnni",
            KernelSet::Neon => "neon",
            KernelSet::Dotprod => "dotprod",
        }
    }

    /// Every set's name, comma-separated (for messages).
    pub fn names() -> String {
        KernelSet::ALL.iter().rev().map(|k| k.name()).collect::<Vec<_>>().join(", ")
    }

    /// The set named `s` (case-insensitive), if any.
    pub fn parse(s: &str) -> Option<KernelSet> {
        KernelSet::ALL.into_iter().find(|k| k.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether this CPU can run the set (run-time detection: the binary assumes nothing beyond
    /// its target's baseline).
    pub fn available(self) -> bool {
        match self {
            KernelSet::Portable => true,
            #[cfg(target_arch = "x86_64")]
            KernelSet::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            KernelSet::Avx512Vnni => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
                    && std::arch::is_x86_feature_detected!("avx512vbmi")
            }
            // NEON is part of the aarch64 baseline.
            #[cfg(target_arch = "aarch64")]
            KernelSet::Neon => true,
            #[cfg(target_arch = "aarch64")]
            KernelSet::Dotprod => std::arch::is_aarch64_feature_detected!("dotprod"),
            #[cfg(target_arch = "arm")]
            KernelSet::Neon => armv7_neon(),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The fastest set this CPU runs, detected once per process.
    pub fn detect() -> KernelSet {
        static BEST: OnceLock<KernelSet> = OnceLock::new();
        *BEST.get_or_init(|| {
            let best = KernelSet::ALL.into_iter().find(|k| k.available()).unwrap_or(KernelSet::Portable);
            log::debug!("int8 kernel set detected: {best}");
            best
        })
    }

    /// The set to use: `forced` if given, else the one named by `EDGENET_KERNELS` if set, else
    /// [`KernelSet::detect`].
    ///
    /// # Errors
    /// An unknown name in the environment variable, or a set this CPU cannot run.
    pub fn select(forced: Option<KernelSet>) -> Result<KernelSet, String> {
        let set = match forced {
            Some(set) => set,
            None => match std::env::var(KERNELS_ENV) {
                Ok(v) if !v.trim().is_empty() => {
                    KernelSet::parse(&v).ok_or_else(|| format!("{KERNELS_ENV}={v:?} is not a kernel set ({})", KernelSet::names()))?
                }
                _ => return Ok(KernelSet::detect()),
            },
        };
        if set.available() {
            Ok(set)
        } else {
            Err(format!(
                "the {set} int8 kernels cannot run on this CPU ({}); it runs: {}",
                std::env::consts::ARCH,
                KernelSet::ALL.into_iter().filter(|k| k.available()).map(|k| k.name()).collect::<Vec<_>>().join(", ")
            ))
        }
    }
}

/// Whether this armv7 CPU has NEON and 32 double registers (`armv7/neon.rs` uses `d16`–`d31`),
/// from the kernel's hardware capabilities: `is_arm_feature_detected!` is not stable Rust.
#[cfg(target_arch = "arm")]
fn armv7_neon() -> bool {
    #[cfg(target_os = "linux")]
    {
        static NEON: OnceLock<bool> = OnceLock::new();
        *NEON.get_or_init(|| {
            // From the kernel's arch/arm/include/uapi/asm/hwcap.h.
            const HWCAP_NEON: libc::c_ulong = 1 << 12;
            const HWCAP_VFPD32: libc::c_ulong = 1 << 19;
            // SAFETY: getauxval reads the process's auxiliary vector; no preconditions.
            let caps = unsafe { libc::getauxval(libc::AT_HWCAP) };
            caps & HWCAP_NEON != 0 && caps & HWCAP_VFPD32 != 0
        })
    }
    #[cfg(not(target_os = "linux"))]
    false
}

impl fmt::Display for KernelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_portable_is_always_there() {
        for k in KernelSet::ALL {
            assert_eq!(KernelSet::parse(k.name()), Some(k));
        }
        assert_eq!(KernelSet::parse(" NEON "), Some(KernelSet::Neon));
        assert_eq!(KernelSet::parse("sse"), None);
        assert!(KernelSet::Portable.available());
        assert!(KernelSet::detect().available());
        assert_eq!(KernelSet::select(Some(KernelSet::Portable)), Ok(KernelSet::Portable));
    }

    /// What CI asserts on each emulated CPU: `EDGENET_EXPECT_KERNELS` names the set detection
    /// must pick there (qemu's `-cpu cortex-a72` → neon, `cortex-a76` → dotprod, armv7
    /// `cortex-a7` → neon), so a run that silently fell back to another set fails instead of proving
    /// nothing. Without it, detection must follow the CPU's own feature flags.
    #[test]
    fn detects_the_expected_kernel_set() {
        let want = match std::env::var("EDGENET_EXPECT_KERNELS") {
            Ok(v) => v.trim().to_string(),
            Err(_) => {
                #[cfg(target_arch = "x86_64")]
                let set = x86_sets_from_cpuinfo().first().copied().unwrap_or("portable");
                #[cfg(target_arch = "aarch64")]
                let set = if std::arch::is_aarch64_feature_detected!("dotprod") { "dotprod" } else { "neon" };
                #[cfg(target_arch = "arm")]
                let set = if armv7_neon() { "neon" } else { "portable" };
                #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm")))]
                let set = "portable";
                set.to_string()
            }
        };
        assert_eq!(KernelSet::detect().name(), want, "kernel set detected on this CPU");
    }

    /// The x86-64 sets this CPU's flags in `/proc/cpuinfo` say it runs, best first: read
    /// independently of `is_x86_feature_detected!`, so that a detection that misses a set
    /// fails the tests instead of leaving that set untested.
    #[cfg(target_arch = "x86_64")]
    fn x86_sets_from_cpuinfo() -> Vec<&'static str> {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let flags: Vec<&str> = info.lines().find(|l| l.starts_with("flags")).map(|l| l.split_whitespace().collect()).unwrap_or_default();
        let has = |f: &str| flags.contains(&f);
        let mut sets = Vec::new();
        if ["avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512vbmi"].iter().all(|f| has(f)) {
            sets.push("avx512vnni");
        }
        if has("avx2") {
            sets.push("avx2");
        }
        sets
    }

    /// Every kernel set this CPU supports is one the kernel tests run (they take
    /// `KernelSet::available`): printed, and checked against the CPU's own flags on x86-64.
    #[test]
    fn every_set_the_cpu_has_is_tested() {
        let runs: Vec<&str> = KernelSet::ALL.into_iter().filter(|k| k.available()).map(|k| k.name()).collect();
        eprintln!("int8 kernel sets tested on this CPU: {}", runs.join(", "));
        #[cfg(target_arch = "x86_64")]
        if std::path::Path::new("/proc/cpuinfo").exists() {
            let mut want = x86_sets_from_cpuinfo();
            want.push("portable");
            assert_eq!(runs, want, "the sets this CPU's flags allow");
        }
    }

    #[test]
    fn sets_for_another_architecture_are_refused() {
        #[cfg(target_arch = "x86_64")]
        let other = KernelSet::Neon;
        #[cfg(not(target_arch = "x86_64"))]
        let other = KernelSet::Avx2;
        let e = KernelSet::select(Some(other)).unwrap_err();
        assert!(e.contains(other.name()) && e.contains("cannot run"), "{e}");
    }
}
