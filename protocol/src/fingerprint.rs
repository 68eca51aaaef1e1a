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

/// The outcome, with a reason for every failed rule.
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
                if !passed && !SOFT_CHECKS.contains(&name) && !(tscless && name == "clock_drift") {
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
