//! The fingerprint rules: whether a miner's six hardware checks pass, judged from the evidence it
//! sent. A claim without evidence (a bare `true`) does not pass. Floats from the miner are only
//! compared, never computed with, so every node reaches the same verdict.

use crate::attestation::Device;
use crate::canonical_json::Value;

/// The six checks every field miner runs.
pub const CHECKS: [&str; 6] =
    ["clock_drift", "cache_timing", "simd_identity", "thermal_drift", "instruction_jitter", "anti_emulation"];

/// A failed `cache_timing` is only a warning (caches are hard to measure on some machines).
pub const SOFT_CHECKS: [&str; 1] = ["cache_timing"];

/// Clock drift with a coefficient of variation in (0, this) is synthetic: real oscillators wander.
pub const MIN_CLOCK_DRIFT_CV: f64 = 0.0001;
/// Vintage machines drift more: below this cv their timing is too stable to be real.
pub const MIN_VINTAGE_CLOCK_DRIFT_CV: f64 = 0.005;

/// Arches that need only `anti_emulation` and whose clock must wander more.
pub const VINTAGE_ARCHES: [&str; 12] = [
    "g4", "g5", "g3", "powerpc", "power macintosh", "powerpc g4", "powerpc g5", "powerpc g3", "power8", "power9", "68k",
    "m68k",
];
/// Arches that predate RDTSC: `clock_drift` is not required, and a failed one is not held against
/// them (the reference's 386/486 rule: the check cannot be measured on that silicon).
pub const TSCLESS_ARCHES: [&str; 2] = ["386", "486"];
/// Arches whose claim needs PowerPC evidence (brand, AltiVec, cache profile, no x86 SIMD).
pub const POWERPC_ARCHES: [&str; 7] = ["g3", "g4", "g5", "power8", "power9", "powerpc", "power macintosh"];

/// Substrings that betray a virtual machine, emulator or container in the hostname or CPU name
/// (the reference node's list; naive substrings, as there).
pub const VM_STRINGS: &[&str] = &[
    "vmware", "vmw", "esxi", "vsphere", "virtualbox", "vbox", "oracle vm", "qemu", "kvm", "bochs", "proxmox", "pve",
    "xen", "xenserver", "citrix", "hyperv", "hyper-v", "microsoft virtual", "parallels", "virtual pc", "vpc",
    "amazon ec2", "aws", "google compute", "gce", "azure", "digitalocean", "linode", "vultr", "ibm systemz", "ibm z",
    "pr/sm", "z/vm", "powervm", "ibm lpar", "dell emc", "vxrail", "sheepshaver", "basilisk", "pearpc",
    "qemu-system-ppc", "mini vmac", "fs-uae", "winuae", "uae", "hatari", "steem", "docker", "podman", "lxc", "lxd",
    "containerd", "crio", "bhyve", "openvz", "virtuozzo", "systemd-nspawn",
];

const X86_BRANDS: &[&str] = &["intel", "xeon", "core", "celeron", "pentium", "amd", "ryzen", "epyc", "athlon", "threadripper"];
const ARM_BRANDS: &[&str] = &[
    "arm", "aarch64", "cortex", "neoverse", "apple m", "broadcom", "allwinner", "rockchip", "amlogic", "qualcomm",
    "snapdragon", "mediatek", "exynos", "graviton", "a64fx", "thunderx", "cavium", "kunpeng", "phytium", "ampere",
    "strongarm", "sa-110", "sa-1100", "sa-1110", "xscale", "arm7tdmi", "arm710", "arm610", "arm926", "arm1176",
];
const PPC_BRANDS: &[&str] =
    &["powerpc", "ppc", "ibm power", "g3", "g4", "g5", "7447", "7450", "7455", "7448", "970", "power8", "power9"];

/// Fingerprint metrics that, when present, must be numbers (422 `INVALID_FINGERPRINT_METRIC`).
pub const NUMERIC_METRICS: [(&str, &str); 7] = [
    ("clock_drift", "cv"),
    ("clock_drift", "samples"),
    ("thermal_entropy", "variance"),
    ("thermal_drift", "variance"),
    ("instruction_jitter", "cv"),
    ("instruction_jitter", "stddev_ns"),
    ("cache_timing", "hierarchy_ratio"),
];

/// The outcome, with a reason for every failed rule (and, from `attestation::evaluate`, a
/// `bonus_unverified: ...` note when a bonus was capped at 1.0x, which does not fail it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub passed: bool,
    pub reasons: Vec<String>,
}

type Data = std::collections::BTreeMap<String, Value>;

/// `{"passed": bool, "data": {non-empty object}}`, or why not.
fn evidence(check: &Value) -> Result<(bool, &Data), &'static str> {
    let passed = check.get("passed").and_then(Value::as_bool).ok_or("no evidence (expected {passed, data})")?;
    match check.get("data").and_then(Value::as_object) {
        Some(d) if !d.is_empty() => Ok((passed, d)),
        _ => Err("no evidence (empty or missing data)"),
    }
}

fn number(data: &Data, key: &str) -> f64 {
    data.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn truthy(data: &Data, key: &str) -> bool {
    match data.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::Int(i)) => i != "0",
        Some(Value::Float(f)) => *f != 0.0,
        Some(Value::Str(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::Null) | None => false,
    }
}

pub fn is_vm_string(s: &str) -> Option<&'static str> {
    let lower = s.to_lowercase();
    VM_STRINGS.iter().copied().find(|vm| lower.contains(vm))
}

fn claimed_arch(device: &Device) -> String {
    let a = device.arch.to_lowercase();
    if a.is_empty() { "modern".into() } else { a }
}

/// Judge a submission's fingerprint (`body.fingerprint.checks`) against its device and signals.
pub fn judge(body: &Value, device: &Device) -> Verdict {
    let mut reasons = Vec::new();
    let empty = Value::Object(Default::default());
    let checks = body.get("fingerprint").and_then(|f| f.get("checks")).unwrap_or(&empty);
    let arch = claimed_arch(device);
    let vintage = VINTAGE_ARCHES.contains(&arch.as_str());
    let tscless = TSCLESS_ARCHES.contains(&arch.as_str());
    let required: &[&str] =
        if vintage || tscless { &["anti_emulation"] } else { &["anti_emulation", "clock_drift"] };

    let mut data_of = std::collections::BTreeMap::new();
    for name in CHECKS {
        let Some(check) = checks.get(name) else {
            if required.contains(&name) {
                reasons.push(format!("{name}: missing required check"));
            }
            continue;
        };
        match evidence(check) {
            Ok((passed, data)) => {
                if !(passed || SOFT_CHECKS.contains(&name) || (tscless && name == "clock_drift")) {
                    reasons.push(format!("{name}: failed on the miner"));
                }
                data_of.insert(name, data);
            }
            Err(why) => reasons.push(format!("{name}: {why}")),
        }
    }

    if let Some(data) = data_of.get("anti_emulation") {
        let indicators = data.get("vm_indicators").and_then(Value::as_array).map_or(0, <[Value]>::len);
        if indicators > 0 || number(data, "indicator_count") > 0.0 || truthy(data, "is_likely_vm") {
            reasons.push("anti_emulation: VM indicators reported".into());
        }
    }
    if let Some(data) = data_of.get("clock_drift") {
        let (cv, samples) = (number(data, "cv"), number(data, "samples"));
        if cv == 0.0 && samples == 0.0 {
            reasons.push("clock_drift: no evidence (cv and samples are 0)".into());
        } else if cv > 0.0 && cv < MIN_CLOCK_DRIFT_CV {
            reasons.push("clock_drift: timing too uniform (synthetic)".into());
        } else if vintage && cv > 0.0 && cv < MIN_VINTAGE_CLOCK_DRIFT_CV {
            reasons.push(format!("clock_drift: timing too stable for a vintage {arch}"));
        }
    }
    if POWERPC_ARCHES.contains(&arch.as_str()) {
        reasons.extend(powerpc_rules(device, &arch, data_of.get("simd_identity").copied(), data_of.get("cache_timing").copied()));
    }

    let hostname = body.get("signals").and_then(|s| s.get("hostname")).and_then(Value::as_str).unwrap_or("");
    for (what, s) in [("hostname", hostname), ("cpu", device.cpu.as_str())] {
        if let Some(vm) = is_vm_string(s) {
            reasons.push(format!("{what} names a virtual machine or emulator ({vm})"));
        }
    }
    Verdict { passed: reasons.is_empty(), reasons }
}

/// A PowerPC claim needs a PowerPC brand, AltiVec evidence, no x86 SIMD, and a cache profile.
fn powerpc_rules(device: &Device, arch: &str, simd: Option<&Data>, cache: Option<&Data>) -> Vec<String> {
    let mut reasons = Vec::new();
    let x86_features = simd.is_some_and(|d| truthy(d, "x86_features"));
    if x86_features {
        reasons.push(format!("simd_identity: claims {arch} but reports x86 SIMD"));
    }
    let brand = format!("{} {}", device.cpu, device.model).to_lowercase();
    let brand_ok = !brand.trim().is_empty()
        && !X86_BRANDS.iter().any(|t| brand.contains(t))
        && !ARM_BRANDS.iter().any(|t| brand.contains(t))
        && PPC_BRANDS.iter().any(|t| brand.contains(t));
    if !brand_ok {
        reasons.push(format!("device: cpu brand does not match a {arch} claim"));
    }
    let altivec = simd.is_some_and(|d| ["altivec", "vsx", "vec_perm", "has_altivec"].iter().any(|k| truthy(d, k))
        && !truthy(d, "has_sse") && !truthy(d, "has_avx"));
    if !altivec || x86_features {
        reasons.push(format!("simd_identity: no AltiVec evidence for {arch}"));
    }
    // The label Mac OS X gives a PowerPC Mac is "Power Macintosh" (neither "powerpc" nor "ppc").
    let names_ppc = |d: &Data| {
        ["arch", "architecture"].iter().any(|k| {
            d.get(*k).and_then(Value::as_str).is_some_and(|a| {
                let a = a.to_lowercase();
                a.contains("powerpc") || a.contains("ppc") || POWERPC_ARCHES.iter().any(|t| a.contains(t))
            })
        })
    };
    // A PowerPC 970 (G5) has no L3: an absent or zero `l3_l2_ratio` is not a missing measurement.
    // An L2 faster than L1 (0 < l2_l1_ratio < 1) is a measurement of the interpreter, not of the
    // caches: unmeasured, and not held against a claim whose AltiVec evidence is there.
    let cache_ok = cache.is_some_and(names_ppc)
        || simd.is_some_and(names_ppc)
        || cache.is_some_and(|d| {
            let (l2_l1, l3_l2) = (number(d, "l2_l1_ratio"), number(d, "l3_l2_ratio"));
            (l2_l1 >= 1.05 && (l3_l2 >= 1.05 || l3_l2 <= 0.0))
                || number(d, "hierarchy_ratio") >= 1.2
                || (l2_l1 > 0.0 && l2_l1 < 1.0)
        });
    if !cache_ok {
        reasons.push(format!("cache_timing: no PowerPC cache profile for {arch}"));
    }
    reasons
}

// ---------------------------------------------------------------------------------------------
// Bonus evidence: an antiquity multiplier above 1.0x needs evidence of the claimed architecture.

/// A family's own SIMD unit, as `simd_identity.data` reports it. Observing another family's unit
/// contradicts a claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimdUnit {
    /// Truthy `has_sse`, `has_avx` or `x86_features`.
    X86,
    /// Truthy `altivec`, `has_altivec`, `vsx`, `has_vsx` or `vec_perm`.
    AltiVec,
    /// Truthy `has_neon`.
    Neon,
}

impl SimdUnit {
    pub const ALL: [SimdUnit; 3] = [SimdUnit::X86, SimdUnit::AltiVec, SimdUnit::Neon];

    /// The `simd_identity.data` keys whose truthy value shows this unit.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            SimdUnit::X86 => &["has_sse", "has_avx", "x86_features"],
            SimdUnit::AltiVec => &["altivec", "has_altivec", "vsx", "has_vsx", "vec_perm"],
            SimdUnit::Neon => &["has_neon"],
        }
    }
}

/// Arches that need the same evidence for their bonus (every arch of `BASE_MULTIPLIERS` above
/// 1.0x is in exactly one class).
#[derive(Debug)]
pub struct BonusClass {
    pub name: &'static str,
    pub archs: &'static [&'static str],
    /// ASCII-lower-case `cpu + " " + model` must contain one of these...
    pub brand: &'static [&'static str],
    /// ...and none of these (a later generation of the family).
    pub brand_beyond: &'static [&'static str],
    /// The platform labels (`arch`/`architecture` of `simd_identity.data` and
    /// `cache_timing.data`, which field miners fill with the OS's machine name) must include one
    /// of these and no other label of `PLATFORM_LABELS`.
    pub labels: &'static [&'static str],
    /// The family's SIMD unit; any other unit observed contradicts the claim.
    pub simd: Option<SimdUnit>,
    /// CPU flags the claimed silicon never had (`x*`: any flag starting with `x`), looked for in
    /// `simd_identity.data` `x86_features`, `flags` and `sample_flags`.
    pub flags_beyond: &'static [&'static str],
    /// `simd_identity.data` booleans that must be present and `false`.
    pub bools_beyond: &'static [&'static str],
}

impl BonusClass {
    /// A class with a ceiling can only be judged from a SIMD observation: `simd_identity` with a
    /// non-empty flag list and its `bools_beyond` present as booleans.
    pub fn needs_observation(&self) -> bool {
        !self.flags_beyond.is_empty() || !self.bools_beyond.is_empty()
    }
}

/// x86 brand tokens (any x86 class).
pub const X86_BRAND_TOKENS: &[&str] = &[
    "intel", "amd", "pentium", "celeron", "xeon", "core", "athlon", "duron", "sempron", "phenom", "opteron", "turion",
    "ryzen", "epyc", "threadripper", "cyrix", "winchip", "centaur", "via", "transmeta", "crusoe", "efficeon", "386",
    "486", "x86",
];
/// PowerPC brand tokens (`PPC_BRANDS` of the strict rule, and the rest of the family).
pub const PPC_BRAND_TOKENS: &[&str] = &[
    "powerpc", "ppc", "ibm power", "power mac", "powerbook", "ibook", "g3", "g4", "g5", "750", "7400", "7410", "7447",
    "7448", "7450", "7455", "7457", "970", "power1", "power2", "power3", "power4", "power5", "power6", "power7",
    "power8", "power9", "gekko", "broadway", "xenon", "cell", "amigaone", "pegasos", "440", "460",
];
/// ARM brand tokens (the reference's ARM brand list).
pub const ARM_BRAND_TOKENS: &[&str] = ARM_BRANDS;

const X86_32_LABELS: &[&str] = &["i386", "i486", "i586", "i686", "x86"];
const X86_LABELS: &[&str] = &["i386", "i486", "i586", "i686", "x86", "x86_64", "amd64", "x64", "i86pc"];
const PPC_LABELS: &[&str] =
    &["ppc", "ppc64", "ppc64le", "powerpc", "powerpc64", "powerpc64le", "power macintosh", "macppc"];
const ARM_PRE_V7_LABELS: &[&str] =
    &["arm", "armel", "armv4l", "armv4tl", "armv5l", "armv5tl", "armv5tel", "armv5tejl", "armv6l"];
const ARM_32_LABELS: &[&str] = &[
    "arm", "armel", "armv4l", "armv4tl", "armv5l", "armv5tl", "armv5tel", "armv5tejl", "armv6l", "armhf", "armv7",
    "armv7l",
];
const APPLE_LABELS: &[&str] = &["aarch64", "arm64", "arm64e"];

/// Every platform label a class knows, and the 64-bit ARM ones no bonus class allows: a label in
/// this list that the claimed class does not allow contradicts the claim; any other label (a
/// host name, "unknown") is ignored.
pub const PLATFORM_LABELS: &[&str] = &[
    // x86
    "i386", "i486", "i586", "i686", "x86", "x86_64", "amd64", "x64", "i86pc",
    // PowerPC
    "ppc", "ppc64", "ppc64le", "powerpc", "powerpc64", "powerpc64le", "power macintosh", "macppc",
    // ARM
    "arm", "armel", "armv4l", "armv4tl", "armv5l", "armv5tl", "armv5tel", "armv5tejl", "armv6l", "armhf", "armv7",
    "armv7l", "armv8l", "aarch64", "arm64", "arm64e",
    // 68k
    "m68k", "amiga", "atari", "mac68k", "sun3", "hp300", "next68k", "mvme68k", "x68k",
    // MIPS
    "mips", "mipsel", "mips64", "mips64el", "sgimips", "pmax", "ip22", "ip27", "ip28", "ip30", "ip32", "ip35",
    // SPARC
    "sparc", "sparc64", "sun4", "sun4c", "sun4d", "sun4m", "sun4u", "sun4v",
    // the rest
    "alpha", "parisc", "parisc64", "hppa", "hppa64", "ia64", "s390", "s390x", "sh", "sh2", "sh3", "sh4", "sh4a",
    "dreamcast", "landisk", "riscv", "riscv32", "riscv64", "6502", "65c02", "65c816", "z80", "vax", "transputer",
    "i860", "i960", "clipper", "ns32k", "pc532", "m88k", "luna88k", "mvme88k", "aviion", "am29k", "romp",
];

/// x86 flags of SSE2 and later, and long mode (64-bit).
const X86_AFTER_SSE: &[&str] =
    &["sse2", "sse3", "pni", "ssse3", "sse4_1", "sse4_2", "sse4a", "avx*", "fma*", "f16c", "lm"];

/// The bonus classes. Specified in docs/PROTOCOL.md §5.3 (a test checks the two agree).
pub const BONUS_CLASSES: &[BonusClass] = &[
    BonusClass {
        name: "x86 before SSE",
        archs: &[
            "386", "386dx", "386sx", "i386", "486", "486dx", "486dx2", "486dx4", "i486", "pentium", "pentium_mmx",
            "pentium_pro", "pentium_ii", "k5", "k6", "k6_2", "k6_3", "cyrix_6x86", "cyrix_mediagx", "cyrix_mii",
            "winchip", "winchip_c6", "transmeta_crusoe", "retro",
        ],
        brand: X86_BRAND_TOKENS,
        brand_beyond: &[],
        labels: X86_32_LABELS,
        simd: Some(SimdUnit::X86),
        flags_beyond: &["sse", "sse2", "sse3", "pni", "ssse3", "sse4_1", "sse4_2", "sse4a", "avx*", "fma*", "f16c", "lm"],
        bools_beyond: &["has_sse", "has_avx"],
    },
    BonusClass {
        name: "x86 with SSE",
        archs: &["pentium_iii", "k7_athlon", "via_c3", "xbox_celeron"],
        brand: X86_BRAND_TOKENS,
        brand_beyond: &[],
        labels: X86_32_LABELS,
        simd: Some(SimdUnit::X86),
        flags_beyond: X86_AFTER_SSE,
        bools_beyond: &["has_avx"],
    },
    BonusClass {
        name: "x86 before AVX",
        archs: &[
            "pentium4", "pentium_d", "core2", "core2duo", "nehalem", "westmere", "k8_athlon64", "k10_phenom",
            "transmeta_efficeon", "via_c7", "via_nano",
        ],
        brand: X86_BRAND_TOKENS,
        brand_beyond: &[],
        labels: X86_LABELS,
        simd: Some(SimdUnit::X86),
        flags_beyond: &["avx*", "fma*", "f16c"],
        bools_beyond: &["has_avx"],
    },
    BonusClass {
        name: "x86",
        archs: &[
            "sandy_bridge", "sandybridge", "ivy_bridge", "ivybridge", "haswell", "broadwell", "skylake", "bulldozer",
            "piledriver", "steamroller", "excavator", "zen", "zen_plus", "zen2",
        ],
        brand: X86_BRAND_TOKENS,
        brand_beyond: &[],
        labels: X86_LABELS,
        simd: Some(SimdUnit::X86),
        flags_beyond: &[],
        bools_beyond: &[],
    },
    BonusClass {
        name: "PowerPC",
        archs: &[
            "g3", "g4", "g5", "power macintosh", "powerpc", "powerpc g3", "powerpc g3 (750)", "powerpc g4",
            "powerpc g4 (74xx)", "powerpc g5", "powerpc g5 (970)", "power1", "power2", "power3", "power4", "power5",
            "power6", "power7", "power8", "power9", "amigaone_g3", "amigaone_g4", "pegasos_g3", "pegasos_g4",
            "sam440", "sam460", "gamecube_gekko", "wii_broadway", "xenon", "xbox360_xenon", "cell_be", "ps3_cell",
        ],
        brand: PPC_BRAND_TOKENS,
        brand_beyond: &[],
        labels: PPC_LABELS,
        simd: Some(SimdUnit::AltiVec),
        flags_beyond: &[],
        bools_beyond: &[],
    },
    BonusClass {
        name: "ARM before NEON (ARMv2-v6)",
        archs: &[
            "arm2", "arm3", "arm6", "arm7", "arm7tdmi", "arm9", "arm926ej", "arm11", "arm1176", "strongarm", "sa1100",
            "sa1110", "xscale", "gba_arm7", "nds_arm7_arm9",
        ],
        brand: ARM_BRAND_TOKENS,
        brand_beyond: &["armv7", "armv8", "armv9", "aarch64", "cortex-a", "cortex_a", "neoverse", "apple m"],
        labels: ARM_PRE_V7_LABELS,
        simd: Some(SimdUnit::Neon),
        flags_beyond: &["neon", "asimd*", "vfpv3*", "vfpv4*"],
        bools_beyond: &["has_neon"],
    },
    BonusClass {
        name: "ARM Cortex-A8/A9 (ARMv7)",
        archs: &["cortex_a8", "cortex_a9"],
        brand: ARM_BRAND_TOKENS,
        brand_beyond: &["armv8", "armv9", "aarch64", "neoverse", "apple m"],
        labels: ARM_32_LABELS,
        simd: Some(SimdUnit::Neon),
        flags_beyond: &["asimd*", "vfpv4*", "idiva", "idivt", "lpae", "crc32", "aes", "pmull", "sha1", "sha2"],
        bools_beyond: &[],
    },
    BonusClass {
        name: "Apple M1",
        archs: &["m1"],
        brand: &["apple m1"],
        brand_beyond: &[],
        labels: APPLE_LABELS,
        simd: Some(SimdUnit::Neon),
        flags_beyond: &[],
        bools_beyond: &[],
    },
    BonusClass {
        name: "Apple M2",
        archs: &["m2"],
        brand: &["apple m2"],
        brand_beyond: &[],
        labels: APPLE_LABELS,
        simd: Some(SimdUnit::Neon),
        flags_beyond: &[],
        bools_beyond: &[],
    },
    BonusClass {
        name: "Apple M3",
        archs: &["m3"],
        brand: &["apple m3"],
        brand_beyond: &[],
        labels: APPLE_LABELS,
        simd: Some(SimdUnit::Neon),
        flags_beyond: &[],
        bools_beyond: &[],
    },
    BonusClass {
        name: "Apple M4",
        archs: &["m4"],
        brand: &["apple m4"],
        brand_beyond: &[],
        labels: APPLE_LABELS,
        simd: Some(SimdUnit::Neon),
        flags_beyond: &[],
        bools_beyond: &[],
    },
    other("68k", &["68000", "68010", "68020", "68030", "68040", "68060", "mc68000", "genesis_68000"],
        &["68000", "68010", "68020", "68030", "68040", "68060", "mc68", "m68k", "motorola 68", "68ec0", "68lc0"],
        &["m68k", "amiga", "atari", "mac68k", "sun3", "hp300", "next68k", "mvme68k", "x68k"]),
    other("MIPS",
        &["mips_r2000", "mips_r3000", "mips_r4000", "mips_r4400", "mips_r5000", "mips_r10000", "mips_r12000",
          "n64_mips", "ps1_mips", "ps2_ee", "emotion_engine", "psp_allegrex"],
        &["mips", "r2000", "r3000", "r4000", "r4300", "r4400", "r4600", "r5000", "r5900", "r8000", "r10000", "r12000",
          "r14000", "r16000", "vr4300", "emotion engine", "allegrex", "loongson", "ingenic"],
        &["mips", "mipsel", "mips64", "mips64el", "sgimips", "pmax", "ip22", "ip27", "ip28", "ip30", "ip32", "ip35"]),
    other("SPARC", &["sparc_v7", "sparc_v8", "sparc_v9", "ultrasparc", "ultrasparc_t1", "ultrasparc_t2"],
        &["sparc", "sun4", "niagara"],
        &["sparc", "sparc64", "sun4", "sun4c", "sun4d", "sun4m", "sun4u", "sun4v"]),
    other("Alpha", &["alpha_21064", "alpha_21164", "alpha_21264"],
        &["alpha", "21064", "21164", "21264", "ev4", "ev5", "ev6", "ev7"], &["alpha"]),
    other("PA-RISC", &["pa_risc_1_0", "pa_risc_1_1", "pa_risc_2_0"],
        &["pa-risc", "pa_risc", "parisc", "hppa", "pa7", "pa8", "pa-7", "pa-8"], &["parisc", "parisc64", "hppa", "hppa64"]),
    other("IA-64", &["ia64", "itanium", "itanium2"],
        &["itanium", "ia-64", "ia64", "merced", "mckinley", "madison", "montecito", "montvale", "tukwila", "poulson"],
        &["ia64"]),
    other("S/390", &["s390", "s390x"], &["s390", "s/390", "z/architecture", "zseries"], &["s390", "s390x"]),
    other("SuperH", &["sh1", "sh2", "sh4", "sh4a", "saturn_sh2", "dreamcast_sh4"],
        &["sh-1", "sh-2", "sh-3", "sh-4", "sh1", "sh2", "sh3", "sh4", "sh7", "superh", "renesas", "hitachi"],
        &["sh", "sh2", "sh3", "sh4", "sh4a", "dreamcast", "landisk"]),
    other("RISC-V", &["riscv", "riscv32", "riscv64"],
        &["risc-v", "riscv", "rv32", "rv64", "sifive", "t-head", "thead", "starfive", "kendryte", "xuantie", "spacemit"],
        &["riscv", "riscv32", "riscv64"]),
    other("6502", &["6502", "65c02", "65c816", "nes_6502", "snes_65c816"],
        &["6502", "65c02", "65c816", "65816", "2a03", "2a07", "5a22"], &["6502", "65c02", "65c816"]),
    other("Z80", &["z80", "gameboy_z80", "gameboy_color_z80", "sms_z80"], &["z80", "lr35902", "zilog"], &["z80"]),
    other("VAX", &["vax", "vax_780"], &["vax"], &["vax"]),
    other("Transputer", &["transputer", "t414", "t800"], &["transputer", "t414", "t800", "t805", "inmos"], &["transputer"]),
    other("i860", &["i860"], &["i860", "80860"], &["i860"]),
    other("i960", &["i960"], &["i960", "80960"], &["i960"]),
    other("Clipper", &["clipper"], &["clipper"], &["clipper"]),
    other("NS32K", &["ns32k"], &["ns32", "32016", "32032", "32332", "32532"], &["ns32k", "pc532"]),
    other("88k", &["88k", "mc88100"], &["88100", "88110", "88k", "m88k", "mc88"], &["m88k", "luna88k", "mvme88k", "aviion"]),
    other("Am29K", &["am29k"], &["29000", "29k", "am29"], &["am29k"]),
    other("ROMP", &["romp"], &["romp", "rt pc"], &["romp"]),
];

/// A family without a SIMD unit of its own and without a ceiling: brand and platform label only.
const fn other(
    name: &'static str,
    archs: &'static [&'static str],
    brand: &'static [&'static str],
    labels: &'static [&'static str],
) -> BonusClass {
    BonusClass { name, archs, brand, brand_beyond: &[], labels, simd: None, flags_beyond: &[], bools_beyond: &[] }
}

/// The class of an arch (ASCII-lower-cased and trimmed, as `multiplier::base_multiplier` looks
/// it up), if its bonus needs one.
pub fn bonus_class(arch: &str) -> Option<&'static BonusClass> {
    let key = arch.trim().to_ascii_lowercase();
    BONUS_CLASSES.iter().find(|c| c.archs.contains(&key.as_str()))
}

/// The data of a check of the right shape (`{"passed": bool, "data": {non-empty}}`), passed or
/// not: a failed check's observations can still contradict a claim.
fn check_data<'a>(body: &'a Value, name: &str) -> Option<&'a Data> {
    let check = body.get("fingerprint")?.get("checks")?.get(name)?;
    evidence(check).ok().map(|(_, d)| d)
}

/// The flag tokens `simd_identity.data` lists (`x86_features`, `flags`, `sample_flags`): each
/// string split at whitespace, ASCII-lower-cased, `.` read as `_` (macOS writes `SSE4.1`).
fn flag_tokens(simd: &Data) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for key in ["x86_features", "flags", "sample_flags"] {
        for item in simd.get(key).and_then(Value::as_array).unwrap_or(&[]) {
            if let Some(s) = item.as_str() {
                out.extend(s.split_whitespace().map(|t| t.to_ascii_lowercase().replace('.', "_")));
            }
        }
    }
    out
}

fn flag_matches(flag: &str, pattern: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => flag.starts_with(prefix),
        None => flag == pattern,
    }
}

/// Whether a submission carries evidence for the bonus of its claimed arch: `Ok` when the arch
/// has no bonus class or the evidence is consistent with it, otherwise why not. No arithmetic:
/// strings are compared and values tested for truthiness, so every node reaches the same answer.
pub fn bonus_evidence(body: &Value, device: &Device) -> Result<(), String> {
    let Some(class) = bonus_class(&device.arch) else { return Ok(()) };
    let arch = device.arch.trim().to_ascii_lowercase();
    let simd = check_data(body, "simd_identity");
    let cache = check_data(body, "cache_timing");

    let brand = format!("{} {}", device.cpu, device.model).to_ascii_lowercase();
    if !class.brand.iter().any(|t| brand.contains(t)) {
        return Err(format!("cpu/model names no {} processor", class.name));
    }
    if let Some(t) = class.brand_beyond.iter().find(|t| brand.contains(*t)) {
        return Err(format!("cpu/model names a later processor than {arch} ({t})"));
    }

    let labels: Vec<String> = [simd, cache]
        .into_iter()
        .flatten()
        .flat_map(|d| ["arch", "architecture"].map(|k| d.get(k).and_then(Value::as_str)))
        .flatten()
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    if let Some(l) = labels.iter().find(|l| PLATFORM_LABELS.contains(&l.as_str()) && !class.labels.contains(&l.as_str())) {
        return Err(format!("the fingerprint ran on {l}, not on {}", class.name));
    }
    if !labels.iter().any(|l| class.labels.contains(&l.as_str())) {
        return Err(format!("no platform label of {} in simd_identity or cache_timing", class.name));
    }

    if let Some(d) = simd {
        for unit in SimdUnit::ALL {
            if Some(unit) != class.simd && unit.keys().iter().any(|k| truthy(d, k)) {
                return Err(format!("simd_identity shows {unit:?} SIMD, foreign to {}", class.name));
            }
        }
    }

    if class.needs_observation() {
        let Some(d) = simd else {
            return Err(format!("{arch} needs a simd_identity observation"));
        };
        let listed = ["flags", "sample_flags"]
            .iter()
            .any(|k| d.get(*k).and_then(Value::as_array).is_some_and(|a| a.iter().any(|f| f.as_str().is_some_and(|s| !s.trim().is_empty()))));
        if !listed {
            return Err(format!("{arch} needs the observed CPU flags (simd_identity flags or sample_flags)"));
        }
        for key in class.bools_beyond {
            match d.get(*key) {
                Some(Value::Bool(false)) => {}
                Some(Value::Bool(true)) => return Err(format!("simd_identity: {key} is true, beyond {arch}")),
                _ => return Err(format!("{arch} needs simd_identity {key} as a boolean")),
            }
        }
        let tokens = flag_tokens(d);
        if let Some(f) = tokens.iter().find(|f| class.flags_beyond.iter().any(|p| flag_matches(f, p))) {
            return Err(format!("simd_identity: flag {f} is beyond {arch}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical_json::parse;

    fn body(checks: &str, hostname: &str, device: &str) -> (Value, Device) {
        let b = parse(format!(r#"{{"fingerprint": {{"checks": {checks}}}, "signals": {{"hostname": "{hostname}"}}, "device": {device}}}"#).as_bytes()).unwrap();
        let d = Device::from_body(&b);
        (b, d)
    }

    const GOOD: &str = r#"{
        "clock_drift": {"passed": true, "data": {"cv": 0.0123, "samples": 1000}},
        "cache_timing": {"passed": true, "data": {"l2_l1_ratio": 2.1, "l3_l2_ratio": 3.4}},
        "simd_identity": {"passed": true, "data": {"arch": "ppc", "has_altivec": true}},
        "thermal_drift": {"passed": true, "data": {"drift_ratio": 1.02}},
        "instruction_jitter": {"passed": true, "data": {"cv": 0.04, "stddev_ns": 12.5}},
        "anti_emulation": {"passed": true, "data": {"vm_indicators": [], "indicator_count": 0, "is_likely_vm": false}}
    }"#;
    const G4: &str = r#"{"family": "PowerPC", "arch": "G4", "cpu": "7447A"}"#;

    #[test]
    fn real_evidence_passes() {
        let (b, d) = body(GOOD, "powermac", G4);
        assert_eq!(judge(&b, &d), Verdict { passed: true, reasons: vec![] });
    }

    #[test]
    fn six_bare_trues_do_not_pass() {
        let bare = r#"{"clock_drift": true, "cache_timing": true, "simd_identity": true, "thermal_drift": true,
                       "instruction_jitter": true, "anti_emulation": true}"#;
        let (b, d) = body(bare, "box", r#"{"arch": "modern"}"#);
        let v = judge(&b, &d);
        assert!(!v.passed);
        assert_eq!(v.reasons.len(), 6, "{:?}", v.reasons);
    }

    #[test]
    fn each_rule_fails_on_its_own() {
        let cases = [
            (GOOD.replace(r#""indicator_count": 0"#, r#""indicator_count": 1"#), "powermac", G4.to_string()),
            (GOOD.replace(r#""vm_indicators": []"#, r#""vm_indicators": ["dmi:qemu"]"#), "powermac", G4.to_string()),
            (GOOD.replace(r#""is_likely_vm": false"#, r#""is_likely_vm": true"#), "powermac", G4.to_string()),
            (GOOD.replace(r#""anti_emulation": {"passed": true"#, r#""anti_emulation": {"passed": false"#), "powermac", G4.to_string()),
            (GOOD.to_string(), "my-kvm-host", G4.to_string()),
            (GOOD.to_string(), "powermac", r#"{"arch": "G4", "cpu": "QEMU Virtual CPU"}"#.to_string()),
            (GOOD.replace("0.0123", "0.00005"), "powermac", G4.to_string()),
            // Vintage clocks must wander more than modern ones.
            (GOOD.replace("0.0123", "0.003"), "powermac", G4.to_string()),
            (GOOD.replace(r#""has_altivec": true"#, r#""has_altivec": false"#), "powermac", G4.to_string()),
            (GOOD.replace(r#""has_altivec": true"#, r#""has_altivec": true, "x86_features": ["sse2"]"#), "powermac", G4.to_string()),
            (GOOD.replace(r#""has_altivec": true"#, r#""has_altivec": true, "has_avx": true"#), "powermac", G4.to_string()),
            (GOOD.to_string(), "powermac", r#"{"arch": "G4", "cpu": "Intel Core 2"}"#.to_string()),
            (GOOD.replace(r#""arch": "ppc", "#, "").replace(r#""l3_l2_ratio": 3.4"#, r#""l3_l2_ratio": 1.0"#), "powermac", G4.to_string()),
            (GOOD.replace(r#""passed": true, "data": {"drift_ratio""#, r#""passed": false, "data": {"drift_ratio""#), "powermac", G4.to_string()),
            (GOOD.replace(r#""anti_emulation": {"passed": true, "data": {"vm_indicators": [], "indicator_count": 0, "is_likely_vm": false}}"#, r#""anti_emulation": {"passed": true, "data": {}}"#), "powermac", G4.to_string()),
            (r#"{"anti_emulation": {"passed": true, "data": {"vm_indicators": []}}}"#.to_string(), "box", r#"{"arch": "modern"}"#.to_string()),
            (r#"{"clock_drift": {"passed": true, "data": {"cv": 0.01}}}"#.to_string(), "box", r#"{"arch": "modern"}"#.to_string()),
            (r#"{"clock_drift": {"passed": true, "data": {"cv": 0, "samples": 0}}, "anti_emulation": {"passed": true, "data": {"vm_indicators": []}}}"#.to_string(), "box", r#"{"arch": "modern"}"#.to_string()),
        ];
        for (checks, host, dev) in cases {
            let (b, d) = body(&checks, host, &dev);
            assert!(!judge(&b, &d).passed, "should fail: {checks} {host} {dev}");
        }
    }

    #[test]
    fn powerpc_cache_profile_as_the_reference_reads_it() {
        // Without the simd_identity label, only cache_timing can show the profile: Mac OS X names
        // a PowerPC Mac "Power Macintosh"; a G5 has no L3; an L2 the probe finds faster than L1
        // is unmeasured (the AltiVec evidence already shows the arch), not a failure.
        let no_label = GOOD.replace(r#""arch": "ppc", "#, "");
        let cache = r#""cache_timing": {"passed": true, "data": {"l2_l1_ratio": 2.1, "l3_l2_ratio": 3.4}}"#;
        assert!(no_label.contains(cache));
        let with = |data: &str| {
            let (b, d) = body(&no_label.replace(cache, &format!(r#""cache_timing": {{"passed": true, "data": {data}}}"#)), "powermac", G4);
            judge(&b, &d)
        };
        for ok in [
            r#"{"arch": "power macintosh", "l2_l1_ratio": 1.0, "l3_l2_ratio": 1.0}"#,
            r#"{"arch": "Power Macintosh"}"#,
            r#"{"l2_l1_ratio": 1.3}"#,
            r#"{"l2_l1_ratio": 1.3, "l3_l2_ratio": 0}"#,
            r#"{"l2_l1_ratio": 0.801, "l3_l2_ratio": 0.981, "measurement": "inconclusive_on_this_arch"}"#,
        ] {
            assert!(with(ok).passed, "{ok}: {:?}", with(ok));
        }
        for bad in [r#"{"l2_l1_ratio": 1.0, "l3_l2_ratio": 1.0}"#, r#"{"l2_l1_ratio": 1.3, "l3_l2_ratio": 1.02}"#, r#"{"arch": "x86_64"}"#] {
            assert!(!with(bad).passed, "{bad}");
        }
    }

    #[test]
    fn a_386_or_486_need_not_measure_clock_drift() {
        let ae = r#""anti_emulation": {"passed": true, "data": {"vm_indicators": []}}"#;
        for arch in ["386", "486"] {
            let dev = format!(r#"{{"arch": "{arch}", "cpu": "Intel {arch}DX"}}"#);
            let (b, d) = body(&format!("{{{ae}}}"), "retro", &dev);
            assert!(judge(&b, &d).passed, "{arch} without clock_drift: {:?}", judge(&b, &d));
            let failed = r#""clock_drift": {"passed": false, "data": {"fail_reason": "no TSC", "cv": 0.02, "samples": 40}}"#;
            let (b, d) = body(&format!("{{{ae}, {failed}}}"), "retro", &dev);
            assert!(judge(&b, &d).passed, "{arch} with a failed clock_drift: {:?}", judge(&b, &d));
            // What it does send is still read: a synthetic cv fails.
            let synthetic = r#""clock_drift": {"passed": true, "data": {"cv": 0.00005, "samples": 40}}"#;
            let (b, d) = body(&format!("{{{ae}, {synthetic}}}"), "retro", &dev);
            assert!(!judge(&b, &d).passed);
        }
        // A Pentium has a TSC.
        let (b, d) = body(&format!("{{{ae}}}"), "retro", r#"{"arch": "pentium", "cpu": "Intel Pentium"}"#);
        assert!(!judge(&b, &d).passed);
    }

    #[test]
    fn modern_and_soft_cases_pass() {
        // A modern box needs neither AltiVec nor clock-drift vintage limits; a failed cache_timing
        // is only a warning; absent optional checks are fine.
        let modern = r#"{"clock_drift": {"passed": true, "data": {"cv": 0.002}},
                         "cache_timing": {"passed": false, "data": {"l2_l1_ratio": 1.0}},
                         "anti_emulation": {"passed": true, "data": {"vm_indicators": [], "indicator_count": 0, "is_likely_vm": false}}}"#;
        let (b, d) = body(modern, "box", r#"{"arch": "modern", "cpu": "Intel Xeon"}"#);
        assert!(judge(&b, &d).passed, "{:?}", judge(&b, &d));
        // A vintage claim needs only anti_emulation.
        let only_ae = r#"{"anti_emulation": {"passed": true, "data": {"vm_indicators": []}},
                          "simd_identity": {"passed": true, "data": {"has_altivec": true}},
                          "cache_timing": {"passed": true, "data": {"hierarchy_ratio": 2.0}}}"#;
        let (b, d) = body(only_ae, "powermac", G4);
        assert!(judge(&b, &d).passed, "{:?}", judge(&b, &d));
    }
}

/// Bonus evidence (PROTOCOL.md §5.3): field miners' bodies keep their bonus, made-up claims get at
/// most 1.0x, and no body without family evidence ever earns more.
#[cfg(test)]
mod bonus_tests {
    use super::*;
    use crate::attestation::{Evaluation, evaluate, parse_submission, sign_request};
    use crate::crypto::Keypair;
    use crate::multiplier::{BASE_MULTIPLIERS, UNIT, base_multiplier};
    use crate::spec::ChainSpec;
    use proptest::prelude::*;
    use serde_json::{Value as J, json};

    /// Sign a body with this device and these checks (as `rustchain attest` does) and evaluate it
    /// at slot 0 (no decay: the hardware weight is the base).
    fn eval_with(device: J, checks: J, hostname: &str) -> Evaluation {
        let key = Keypair::from_seed(&[3; 32]);
        let mut req = json!({
            "miner": "bonus-wallet", "miner_id": "bonus-box", "nonce": "n-1",
            "report": {"nonce": "n-1", "commitment": "ab12", "derived": {}, "entropy_score": 0.03},
            "device": device, "signals": {"macs": ["00:0a:95:9d:68:16"], "hostname": hostname},
            "fingerprint": {"all_passed": true, "checks": checks},
        });
        sign_request(&key, req.as_object_mut().unwrap());
        let sub = parse_submission(&serde_json::to_vec(&req).unwrap()).unwrap();
        evaluate(&ChainSpec::builtin("devnet").unwrap(), &sub, 0)
    }

    fn eval(device: J, checks: J) -> Evaluation {
        eval_with(device, checks, "host")
    }

    /// The six checks as the reference's Python fingerprint_checks.py fills them, with this
    /// `simd_identity.data` (None: no simd_identity) and `cache_timing.data.arch`.
    fn checks(simd: Option<J>, cache_arch: Option<&str>) -> J {
        let mut cache = json!({"l1_ns": 18.42, "l2_ns": 40.37, "l3_ns": 93.11, "l2_l1_ratio": 2.192, "l3_l2_ratio": 2.306});
        if let Some(a) = cache_arch {
            cache["arch"] = json!(a);
        }
        let mut c = json!({
            "clock_drift": {"passed": true, "data": {"mean_ns": 1843211, "stdev_ns": 61234, "cv": 0.033222, "drift_stdev": 70311}},
            "cache_timing": {"passed": true, "data": cache},
            "thermal_drift": {"passed": true, "data": {"cold_avg_ns": 3712044, "hot_avg_ns": 3650981, "cold_stdev": 98122, "hot_stdev": 80457, "drift_ratio": 0.9836}},
            "instruction_jitter": {"passed": true, "data": {"int_avg_ns": 612345, "fp_avg_ns": 701223, "branch_avg_ns": 455102, "int_stdev": 21456, "fp_stdev": 25110, "branch_stdev": 17302}},
            "anti_emulation": {"passed": true, "data": {"vm_indicators": [], "indicator_count": 0, "is_likely_vm": false}},
        });
        if let Some(s) = simd {
            c["simd_identity"] = json!({"passed": true, "data": s});
        }
        c
    }

    fn capped(e: &Evaluation) -> bool {
        e.hw_weight <= UNIT && e.verdict.reasons.iter().any(|r| r.starts_with("bonus_unverified"))
    }

    fn kept(e: &Evaluation, arch: &str) -> bool {
        e.verdict.passed && e.verdict.reasons.is_empty() && e.hw_weight == base_multiplier(arch) && e.weight == e.hw_weight
    }

    /// The two invented checks of issue 13: accepted as a passing fingerprint, never as evidence.
    fn invented() -> J {
        json!({"anti_emulation": {"passed": true, "data": {"x": 1}}, "clock_drift": {"passed": true, "data": {"cv": 0.5}}})
    }

    /// Bodies shaped like what the field miners send, claiming the arch they report.
    fn field_miners() -> Vec<(&'static str, J, J)> {
        let mac_ppc_simd = json!({"arch": "power macintosh", "simd_flags_count": 1, "has_sse": false, "has_avx": false,
                                  "has_altivec": true, "has_neon": false, "sample_flags": ["1"]});
        // A Power Mac G5 walks the Python cache probe slower at L1 than at L2 (the reference's
        // recorded l2_l1 = 0.801), and has no L3.
        let mut g5_checks = checks(Some(mac_ppc_simd.clone()), None);
        g5_checks["cache_timing"]["data"] = json!({"arch": "power macintosh", "l1_ns": 412.5, "l2_ns": 330.4, "l3_ns": 324.1,
            "l2_l1_ratio": 0.801, "l3_l2_ratio": 0.981, "measurement": "inconclusive_on_this_arch"});
        vec![
            ("Mac OS X PowerPC G5 (macos/fingerprint_checks.py)",
             json!({"family": "PowerPC", "arch": "G5", "model": "Power Mac G5", "cpu": "PowerPC G5", "cores": 2, "memory_gb": 4, "serial": "G8512345"}),
             g5_checks.clone()),
            ("Mac OS X PowerPC, arch = platform.machine()",
             json!({"family": "PowerPC", "arch": "Power Macintosh", "model": "PowerMac7,3", "cpu": "PowerPC G5", "cores": 2}),
             g5_checks),
            ("Mac OS X PowerBook G4",
             json!({"family": "PowerPC", "arch": "G4", "model": "PowerBook G4", "cpu": "PowerPC G4", "cores": 1}),
             checks(Some(mac_ppc_simd), Some("power macintosh"))),
            ("docs/API.md's G4 example",
             json!({"family": "PowerPC", "arch": "G4", "model": "PowerMac3,6", "cpu": "PowerPC G4 7447A", "cores": 1,
                    "memory_gb": 1, "serial": "XB1234567", "machine": "Power Macintosh"}),
             checks(Some(json!({"arch": "ppc", "has_altivec": true})), None)),
            ("Linux PowerPC G4 (rustchain attest)",
             json!({"family": "powerpc", "arch": "g4", "model": "7447A, altivec supported", "cpu": "7447A, altivec supported",
                    "cores": 1, "machine": "mdd"}),
             checks(Some(json!({"arch": "powerpc", "flag_source": "cpu", "flag_count": 1, "simd_flags_count": 1, "has_sse": false,
                                "has_avx": false, "has_neon": false, "has_altivec": true, "has_vsx": false, "x86_features": [],
                                "flags": ["altivec"], "sample_flags": ["altivec"]})), Some("powerpc"))),
            ("Linux POWER8 (power8 miner)",
             json!({"family": "PowerPC", "arch": "power8", "model": "IBM POWER8 S824 (8286-42A)",
                    "cpu": "POWER8 (raw), altivec supported", "machine": "ppc64le"}),
             checks(Some(json!({"arch": "ppc64le", "simd_flags_count": 0, "has_sse": false, "has_avx": false, "has_altivec": true,
                                "has_neon": false, "sample_flags": []})), Some("ppc64le"))),
            ("macOS Apple Silicon M1 (macos miner)",
             json!({"family": "Apple Silicon", "arch": "M1", "model": "MacBook Air", "cpu": "Apple M1", "cores": 8, "serial": "C02XK0AAQ6L4"}),
             checks(Some(json!({"arch": "arm64", "simd_flags_count": 31, "has_sse": false, "has_avx": false, "has_altivec": false,
                                "has_neon": true, "sample_flags": ["1", "1", "1", "0", "1", "1", "1", "1", "0", "1"]})), Some("arm64"))),
            ("macOS Apple Silicon M3 Pro",
             json!({"family": "Apple Silicon", "arch": "M3", "model": "MacBook Pro", "cpu": "Apple M3 Pro", "cores": 12}),
             checks(Some(json!({"arch": "arm64", "simd_flags_count": 31, "has_sse": false, "has_avx": false, "has_altivec": false,
                                "has_neon": true, "sample_flags": ["1"]})), Some("arm64"))),
            ("macOS Intel Core 2 Duo (arch from the brand)",
             json!({"family": "x86_64", "arch": "core2", "model": "MacBookPro5,1", "cpu": "Intel(R) Core(TM)2 Duo CPU     P8600  @ 2.40GHz", "cores": 2}),
             checks(Some(json!({"arch": "x86_64", "simd_flags_count": 2, "has_sse": true, "has_avx": false, "has_altivec": false,
                                "has_neon": false, "sample_flags": [
                 "FPU VME DE PSE TSC MSR PAE MCE CX8 APIC SEP MTRR PGE MCA CMOV PAT PSE36 CLFSH DS ACPI MMX FXSR SSE SSE2 SS HTT TM PBE SSE3 DTES64 MON DSCPL VMX SMX EST TM2 SSSE3 CX16 TPR PDCM SSE4.1 XSAVE",
                 "SYSCALL XD EM64T LAHF"]})), Some("x86_64"))),
            ("macOS Intel Ivy Bridge",
             json!({"family": "x86_64", "arch": "ivy_bridge", "model": "MacBookPro10,1", "cpu": "Intel(R) Core(TM) i7-3615QM CPU @ 2.30GHz"}),
             checks(Some(json!({"arch": "x86_64", "simd_flags_count": 3, "has_sse": true, "has_avx": true, "has_altivec": false,
                                "has_neon": false, "sample_flags": ["FPU VME DE PSE TSC SSE SSE2 SSE3 SSSE3 SSE4.1 SSE4.2 POPCNT AES PCLMULQDQ XSAVE OSXSAVE AVX1.0 RDRAND F16C"]})),
                    Some("x86_64"))),
            ("Linux Pentium III (rustchain attest, i686 build)",
             json!({"family": "x86", "arch": "pentium_iii", "model": "Pentium III (Coppermine)", "cpu": "Pentium III (Coppermine)", "cores": 1}),
             checks(Some(json!({"arch": "x86", "flag_source": "flags", "flag_count": 19, "simd_flags_count": 19, "has_sse": true,
                                "has_avx": false, "has_neon": false, "has_altivec": false, "has_vsx": false, "x86_features": ["mmx", "sse"],
                                "flags": ["fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "sep", "mtrr", "pge", "mca", "cmov", "pat", "pse36", "mmx", "fxsr", "sse"],
                                "sample_flags": ["fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "sep"]})), Some("x86"))),
            ("Linux 486 (linux miner; no TSC, so no clock_drift)",
             json!({"family": "x86", "arch": "486", "model": "486", "cpu": "486DX2", "machine": "i486"}),
             {
                 let mut c = checks(Some(json!({"arch": "i486", "simd_flags_count": 1, "has_sse": false, "has_avx": false,
                                                "has_altivec": false, "has_neon": false, "sample_flags": ["fpu"]})), Some("i486"));
                 c.as_object_mut().unwrap().remove("clock_drift");
                 c
             }),
            ("Linux 386 whose clock_drift could not measure (no TSC)",
             json!({"family": "x86", "arch": "386", "cpu": "Intel 386DX", "machine": "i386"}),
             {
                 let mut c = checks(Some(json!({"arch": "i386", "simd_flags_count": 1, "has_sse": false, "has_avx": false,
                                                "has_altivec": false, "has_neon": false, "sample_flags": ["fpu"]})), Some("i386"));
                 c["clock_drift"] = json!({"passed": false, "data": {"error": "no TSC", "cv": 0.02, "samples": 40}});
                 c
             }),
            ("Linux 68040 (linux miner on m68k)",
             json!({"family": "M68K", "arch": "68040", "cpu": "68040", "model": "Amiga 4000", "machine": "m68k"}),
             checks(None, Some("m68k"))),
            ("Raspberry Pi 1 claiming its ARM1176 (reference linux fingerprint)",
             json!({"family": "ARM", "arch": "arm1176", "cpu": "ARMv6-compatible processor rev 7 (v6l)", "machine": "armv6l"}),
             checks(Some(json!({"arch": "armv6l", "simd_flags_count": 7, "has_sse": false, "has_avx": false, "has_altivec": false,
                                "has_neon": false, "sample_flags": ["half", "thumb", "fastmult", "vfp", "edsp", "java", "tls"]})), Some("armv6l"))),
            ("BeagleBone Black claiming its Cortex-A8",
             json!({"family": "ARM", "arch": "cortex_a8", "cpu": "ARMv7 Processor rev 2 (v7l)", "machine": "armv7l"}),
             checks(Some(json!({"arch": "armv7l", "simd_flags_count": 9, "has_sse": false, "has_avx": false, "has_altivec": false,
                                "has_neon": true, "sample_flags": ["half", "thumb", "fastmult", "vfp", "edsp", "thumbee", "neon", "vfpv3", "tls", "vfpd32"]})),
                    Some("armv7l"))),
        ]
    }

    #[test]
    fn field_miners_keep_their_bonus() {
        for (name, device, checks) in field_miners() {
            let arch = device["arch"].as_str().unwrap().to_string();
            assert!(base_multiplier(&arch) > UNIT, "{name}: a bonus arch");
            let e = eval(device, checks);
            assert!(kept(&e, &arch), "{name}: {:?} hw {}", e.verdict, e.hw_weight);
        }
    }

    #[test]
    fn field_miners_without_a_bonus_are_untouched() {
        // The Linux x86_64 miner (0.8x), Windows (its arch is a CPUID string: 1.0x), a Raspberry Pi 4.
        let key = Keypair::from_seed(&[4; 32]);
        let sub = parse_submission(&crate::testkit::linux_miner_body(&key, 1, "box-1", "n", "SN")).unwrap();
        let e = evaluate(&ChainSpec::builtin("devnet").unwrap(), &sub, 0);
        assert!(e.verdict.passed && e.verdict.reasons.is_empty() && e.hw_weight == 800_000_000, "{e:?}");
        let windows = json!({"family": "Windows", "arch": "Intel64 Family 6 Model 158 Stepping 10, GenuineIntel", "model": "AMD64",
                             "cpu": "Intel64 Family 6 Model 158 Stepping 10, GenuineIntel", "machine": "AMD64"});
        let e = eval(windows, checks(Some(json!({"arch": "amd64", "simd_flags_count": 7, "has_sse": true, "has_avx": true, "has_altivec": false,
                                                 "has_neon": false, "sample_flags": ["sse", "sse2", "avx", "avx2", "sse4_1", "sse4_2"]})), Some("amd64")));
        assert!(e.verdict.passed && e.verdict.reasons.is_empty() && e.hw_weight == UNIT, "{e:?}");
        let pi4 = json!({"family": "ARM", "arch": "aarch64", "cpu": "Cortex-A72", "machine": "aarch64"});
        let e = eval(pi4, checks(Some(json!({"arch": "aarch64", "has_neon": false, "has_sse": false, "sample_flags": ["fp", "asimd"]})), Some("aarch64")));
        assert!(e.verdict.passed && e.verdict.reasons.is_empty() && e.hw_weight == 500_000, "{e:?}");
    }

    /// An honest body for a class: a brand token, a platform label, and (when the class has a
    /// ceiling) a SIMD observation with nothing beyond it.
    fn honest(class: &BonusClass, arch: &str) -> (J, J) {
        let device = json!({"arch": arch, "cpu": format!("{} cpu", class.brand[0])});
        let mut simd = json!({"arch": class.labels[0], "sample_flags": ["fpu"]});
        for b in class.bools_beyond {
            simd[*b] = json!(false);
        }
        match class.simd {
            Some(SimdUnit::AltiVec) => simd["has_altivec"] = json!(true),
            Some(SimdUnit::Neon) if !class.bools_beyond.contains(&"has_neon") => simd["has_neon"] = json!(true),
            _ => {}
        }
        (device, checks(Some(simd), Some(class.labels[0])))
    }

    /// Per family: an honest claim keeps its bonus; the two invented checks, a brand alone, or a
    /// platform label alone earn 1.0x; another family's label or SIMD unit caps it.
    #[test]
    fn each_family_honest_keeps_made_up_does_not() {
        for class in BONUS_CLASSES {
            for arch in class.archs {
                let (device, good) = honest(class, arch);
                let e = eval(device.clone(), good.clone());
                assert!(kept(&e, arch), "{}/{arch}: honest {:?} {}", class.name, e.verdict, e.hw_weight);

                let e = eval(json!({"arch": arch}), invented());
                assert!(capped(&e), "{arch}: made up {:?} {}", e.verdict, e.hw_weight);
                if POWERPC_ARCHES.contains(arch) {
                    // The strict PowerPC rules fail it outright: one unit.
                    assert!(!e.verdict.passed && e.weight == 1, "{arch}: {:?}", e.verdict);
                } else {
                    // Accepted as a passing fingerprint, never as evidence: 1.0x.
                    assert!(e.verdict.passed && e.weight == UNIT, "{arch}: {:?}", e.verdict);
                }
                // The brand alone.
                assert!(capped(&eval(device.clone(), invented())), "{arch}: brand alone");
                // The label alone.
                assert!(capped(&eval(json!({"arch": arch, "cpu": "Unknown"}), good.clone())), "{arch}: label alone");
                // Another family's platform label, next to the right one.
                let foreign = if class.labels.contains(&"x86_64") { "ppc" } else { "x86_64" };
                let mut g = good.clone();
                g["cache_timing"]["data"]["arch"] = json!(foreign);
                assert!(capped(&eval(device.clone(), g)), "{arch}: foreign label");
                // Another family's SIMD unit.
                let mut g = good.clone();
                let key = if class.simd == Some(SimdUnit::X86) { "has_altivec" } else { "has_sse" };
                g["simd_identity"]["data"][key] = json!(true);
                assert!(capped(&eval(device.clone(), g)), "{arch}: foreign SIMD");
            }
        }
    }

    #[test]
    fn x86_vintage_with_modern_simd_is_capped() {
        // The Linux x86_64 miner's body (Ryzen: SSE2-SSE4, AVX, x86_64), claiming each vintage arch.
        let key = Keypair::from_seed(&[5; 32]);
        let body: J = serde_json::from_slice(&crate::testkit::linux_miner_body(&key, 2, "box-2", "n", "SN")).unwrap();
        for class in &BONUS_CLASSES[..3] {
            for arch in class.archs {
                let mut device = body["device"].clone();
                device["arch"] = json!(arch);
                let e = eval(device, body["fingerprint"]["checks"].clone());
                assert!(e.verdict.passed && capped(&e), "{arch}: {:?}", e.verdict);
            }
        }
        // One modern trait at a time on an otherwise honest body.
        let p3 = |f: &dyn Fn(&mut J)| {
            let (_, _, mut c) = field_miners().into_iter().find(|m| m.0.starts_with("Linux Pentium III")).unwrap();
            f(&mut c);
            eval(json!({"arch": "pentium_iii", "cpu": "Pentium III (Coppermine)"}), c)
        };
        assert!(!capped(&p3(&|_| {})));
        type Edit<'a> = &'a dyn Fn(&mut J);
        let cases: [(&str, Edit<'_>); 8] = [
            ("sse2 flag", &|c| c["simd_identity"]["data"]["flags"].as_array_mut().unwrap().push(json!("sse2"))),
            ("sse2 feature", &|c| c["simd_identity"]["data"]["x86_features"].as_array_mut().unwrap().push(json!("sse2"))),
            ("SSE4.1 (macOS spelling)", &|c| c["simd_identity"]["data"]["sample_flags"] = json!(["FPU VME SSE SSE4.1"])),
            ("pni (SSE3)", &|c| c["simd_identity"]["data"]["sample_flags"] = json!(["fpu", "pni"])),
            ("long mode", &|c| c["simd_identity"]["data"]["flags"].as_array_mut().unwrap().push(json!("lm"))),
            ("has_avx", &|c| c["simd_identity"]["data"]["has_avx"] = json!(true)),
            ("x86_64 label", &|c| c["cache_timing"]["data"]["arch"] = json!("x86_64")),
            ("no simd_identity", &|c| {
                c.as_object_mut().unwrap().remove("simd_identity");
            }),
        ];
        for (what, f) in cases {
            assert!(capped(&p3(f)), "pentium_iii with {what}");
        }
        // Plain SSE is a Pentium III's, not a Pentium MMX's; an observation without has_avx or
        // without a flag list shows nothing.
        let mmx = |simd: J| eval(json!({"arch": "pentium_mmx", "cpu": "Pentium MMX"}), checks(Some(simd), Some("i586")));
        assert!(!capped(&mmx(json!({"arch": "i586", "has_sse": false, "has_avx": false, "sample_flags": ["fpu", "mmx"]}))));
        assert!(capped(&mmx(json!({"arch": "i586", "has_sse": true, "has_avx": false, "sample_flags": ["fpu", "mmx"]}))));
        assert!(capped(&mmx(json!({"arch": "i586", "has_sse": false, "has_avx": false, "sample_flags": ["fpu", "mmx", "sse"]}))));
        assert!(capped(&mmx(json!({"arch": "i586", "has_sse": false, "sample_flags": ["fpu", "mmx"]}))));
        assert!(capped(&mmx(json!({"arch": "i586", "has_sse": false, "has_avx": false, "sample_flags": []}))));
        // AVX is beyond every pre-Sandy-Bridge tier.
        let core2 = |avx: bool| eval(json!({"arch": "core2", "cpu": "Intel(R) Core(TM)2 Duo"}),
                                     checks(Some(json!({"arch": "x86_64", "has_sse": true, "has_avx": avx, "sample_flags": ["fpu", "sse2"]})), None));
        assert!(!capped(&core2(false)) && capped(&core2(true)));
    }

    #[test]
    fn arm_and_apple_claims_need_their_generation() {
        let pi4 = |arch: &str| eval(json!({"arch": arch, "cpu": "Cortex-A72", "machine": "aarch64"}),
                                    checks(Some(json!({"arch": "aarch64", "has_neon": false, "has_sse": false, "sample_flags": ["fp", "asimd"]})), Some("aarch64")));
        for arch in ["arm2", "arm7tdmi", "strongarm", "arm1176", "cortex_a8", "m1"] {
            assert!(capped(&pi4(arch)), "a Raspberry Pi 4 claiming {arch}");
        }
        // A Raspberry Pi 3 on a 32-bit OS: armv7l, but ARMv8 features.
        let pi3 = |arch: &str| eval(json!({"arch": arch, "cpu": "ARMv7 Processor rev 4 (v7l)"}),
                                    checks(Some(json!({"arch": "armv7l", "has_neon": true, "sample_flags": ["half", "thumb", "fastmult", "vfp", "edsp", "neon", "vfpv3", "tls", "vfpv4", "idiva"]})), Some("armv7l")));
        assert!(capped(&pi3("cortex_a9")) && capped(&pi3("arm11")));
        // An M4 claiming M1; an M1 claiming its own generation.
        let mac = |arch: &str, cpu: &str| eval(json!({"arch": arch, "cpu": cpu}), checks(Some(json!({"arch": "arm64", "has_neon": true})), Some("arm64")));
        assert!(capped(&mac("M1", "Apple M4 Max")) && !capped(&mac("M1", "Apple M1 Max")) && !capped(&mac("m4", "Apple M4")));
    }

    #[test]
    fn a_capped_claim_still_passes_or_fails_on_its_own() {
        // The cap does not fail a fingerprint, and a failed fingerprint stays at one unit.
        let e = eval(json!({"arch": "386"}), invented());
        assert!(e.verdict.passed && e.weight == UNIT);
        let mut c = invented();
        c["anti_emulation"]["data"]["vm_indicators"] = json!(["dmi:qemu"]);
        let e = eval(json!({"arch": "386"}), c);
        assert!(!e.verdict.passed && e.weight == 1 && e.hw_weight == UNIT, "{e:?}");
        // PowerPC strict rules still fail an unproven G4; "PowerPC G4" (not strict) is capped.
        let e = eval(json!({"arch": "G4", "cpu": "Intel Core 2"}), checks(Some(json!({"arch": "x86_64", "has_sse": true})), None));
        assert!(!e.verdict.passed && capped(&e) && e.weight == 1, "{e:?}");
        let e = eval(json!({"arch": "PowerPC G4", "cpu": "Intel Core 2"}), checks(Some(json!({"arch": "x86_64", "has_sse": true})), None));
        assert!(e.verdict.passed && capped(&e));
    }

    #[test]
    fn classes_cover_every_bonus_exactly_once() {
        for (arch, base) in BASE_MULTIPLIERS {
            let n = BONUS_CLASSES.iter().filter(|c| c.archs.contains(arch)).count();
            assert_eq!(n, usize::from(*base > UNIT), "{arch} ({base}) is in {n} classes");
        }
        for class in BONUS_CLASSES {
            assert!(!class.brand.is_empty() && !class.labels.is_empty(), "{}", class.name);
            assert!(class.labels.iter().all(|l| PLATFORM_LABELS.contains(l)), "{}: labels are known", class.name);
            for arch in class.archs {
                assert!(base_multiplier(arch) > UNIT, "{arch}");
                assert_eq!(bonus_class(&format!(" {} ", arch.to_uppercase())).map(|c| c.name), Some(class.name));
            }
        }
    }

    /// The §5.3 lists, rendered from the code: the doc must contain each line as it is here.
    fn spec_lines() -> Vec<String> {
        let list = |v: &[&str]| v.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ");
        let named = |v: &'static [&'static str]| {
            if std::ptr::eq(v, X86_BRAND_TOKENS) {
                "X86_BRAND".to_string()
            } else if std::ptr::eq(v, PPC_BRAND_TOKENS) {
                "PPC_BRAND".to_string()
            } else if std::ptr::eq(v, ARM_BRAND_TOKENS) {
                "ARM_BRAND".to_string()
            } else {
                list(v)
            }
        };
        let mut lines = vec![
            format!("X86_BRAND = {}.", list(X86_BRAND_TOKENS)),
            format!("PPC_BRAND = {}.", list(PPC_BRAND_TOKENS)),
            format!("ARM_BRAND = {}.", list(ARM_BRAND_TOKENS)),
            format!("LABELS = {}.", list(PLATFORM_LABELS)),
        ];
        for c in BONUS_CLASSES {
            let mut s = format!("- **{}**: {}. Brand: {}", c.name, list(c.archs), named(c.brand));
            if !c.brand_beyond.is_empty() {
                s += &format!("; not {}", list(c.brand_beyond));
            }
            s += &format!(". Labels: {}. SIMD unit: {}.", list(c.labels), c.simd.map_or("none".into(), |u| format!("{u:?}")));
            if !c.flags_beyond.is_empty() {
                s += &format!(" Flags beyond: {}.", list(c.flags_beyond));
            }
            if !c.bools_beyond.is_empty() {
                s += &format!(" False: {}.", list(c.bools_beyond));
            }
            lines.push(s);
        }
        lines
    }

    #[test]
    fn protocol_md_lists_the_classes_as_the_code_has_them() {
        let doc = include_str!("../../docs/PROTOCOL.md").replace("\n  ", " ");
        let missing: Vec<String> = spec_lines().into_iter().filter(|l| !doc.contains(l.as_str())).collect();
        assert!(missing.is_empty(), "docs/PROTOCOL.md §5.3 lacks (or words differently):\n{}", missing.join("\n"));
    }

    // -----------------------------------------------------------------------------------------
    // The property: whatever the body, a bonus above 1.0x comes only with family evidence.

    /// Everything a generated body picks its strings from: every brand token and label of every
    /// class (so near misses are common), flags, and junk.
    fn pool() -> Vec<&'static str> {
        let mut v: Vec<&'static str> = vec!["", "unknown", "Unknown", "box-7", "QEMU", "sse2", "avx2", "neon", "lm", "fpu", "altivec"];
        for c in BONUS_CLASSES {
            v.extend(c.brand.iter().chain(c.labels).chain(c.brand_beyond).chain(c.flags_beyond));
        }
        v.extend(PLATFORM_LABELS);
        v.sort();
        v.dedup();
        v
    }

    fn arb_text() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(pool()), 0..4).prop_map(|v| v.join(" "))
    }

    fn arb_opt_bool() -> impl Strategy<Value = Option<bool>> {
        prop_oneof![Just(None), Just(Some(false)), Just(Some(true))]
    }

    /// Family evidence, as the property states it: a brand token of the claimed arch's class, a
    /// platform label the class allows, and no known label it does not allow.
    fn has_family_evidence(arch: &str, cpu: &str, model: &str, labels: &[String]) -> bool {
        let Some(c) = bonus_class(arch) else { return false };
        let brand = format!("{cpu} {model}").to_ascii_lowercase();
        let labels: Vec<String> = labels.iter().map(|l| l.trim().to_ascii_lowercase()).collect();
        c.brand.iter().any(|t| brand.contains(t))
            && labels.iter().any(|l| c.labels.contains(&l.as_str()))
            && labels.iter().all(|l| !PLATFORM_LABELS.contains(&l.as_str()) || c.labels.contains(&l.as_str()))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// No fingerprint without family evidence yields hw_weight above 1.0x, for any arch of
        /// BASE_MULTIPLIERS; half the bodies use the claimed class's own brand and labels, so
        /// the ones that do have evidence are generated too.
        #[test]
        fn no_bonus_without_family_evidence(
            arch_i in 0..BASE_MULTIPLIERS.len(),
            (upper, own_brand, own_label, with_simd) in any::<(bool, bool, bool, bool)>(),
            pick in any::<prop::sample::Index>(),
            (cpu, model) in (arb_text(), arb_text()),
            (simd_arch, cache_arch) in (prop::option::of(arb_text()), prop::option::of(arb_text())),
            (has_sse, has_avx, has_altivec, has_neon) in (arb_opt_bool(), arb_opt_bool(), arb_opt_bool(), arb_opt_bool()),
            flags in prop::collection::vec(prop::sample::select(pool()), 0..6),
        ) {
            let arch = if upper { BASE_MULTIPLIERS[arch_i].0.to_uppercase() } else { BASE_MULTIPLIERS[arch_i].0.to_string() };
            let class = bonus_class(&arch);
            let mut cpu = cpu;
            let mut simd_arch = simd_arch;
            if let Some(c) = class {
                if own_brand {
                    cpu = format!("{cpu} {}", pick.get(c.brand));
                }
                if own_label {
                    simd_arch = Some(pick.get(c.labels).to_string());
                }
            }
            let mut simd = json!({"sample_flags": flags});
            for (k, v) in [("has_sse", has_sse), ("has_avx", has_avx), ("has_altivec", has_altivec), ("has_neon", has_neon)] {
                if let Some(b) = v {
                    simd[k] = json!(b);
                }
            }
            if let Some(a) = &simd_arch {
                simd["arch"] = json!(a);
            }
            let c = checks(with_simd.then_some(simd), cache_arch.as_deref());
            let e = eval(json!({"arch": arch, "cpu": cpu, "model": model}), c);
            let labels: Vec<String> = [with_simd.then_some(simd_arch.clone()).flatten(), cache_arch.clone()].into_iter().flatten().collect();
            if e.hw_weight > UNIT {
                prop_assert!(has_family_evidence(&arch, &cpu, &model, &labels),
                    "{arch} earned {} with cpu {cpu:?} model {model:?} labels {labels:?}", e.hw_weight);
            }
            prop_assert!(e.hw_weight <= base_multiplier(&arch).max(UNIT));
        }
    }
}
