//! Antiquity multipliers in fixed-point weight units (1.0x = 1,000,000,000), and their decay with
//! chain age: vintage bonuses shrink by 15 % of their size per year, computed with integers only.

/// Weight units per 1.0x.
pub const UNIT: u64 = 1_000_000_000;

/// Seconds in a Julian year (365.25 days): the year the reference's decay uses.
pub const YEAR_SECONDS: u64 = 31_557_600;

/// Base multipliers by device arch (lower-case), in weight units, sorted by key. The reference
/// node's `ANTIQUITY_MULTIPLIERS` table; an arch not listed gets 1.0x (vector V2's `unknown-arch`).
pub const BASE_MULTIPLIERS: &[(&str, u64)] = &[
    ("386", 3_000_000_000),
    ("386dx", 3_000_000_000),
    ("386sx", 3_000_000_000),
    ("486", 2_900_000_000),
    ("486dx", 2_900_000_000),
    ("486dx2", 2_900_000_000),
    ("486dx4", 2_800_000_000),
    ("6502", 2_800_000_000),
    ("65c02", 2_700_000_000),
    ("65c816", 2_700_000_000),
    ("68000", 3_000_000_000),
    ("68010", 2_900_000_000),
    ("68020", 2_700_000_000),
    ("68030", 2_500_000_000),
    ("68040", 2_400_000_000),
    ("68060", 2_200_000_000),
    ("88k", 3_000_000_000),
    ("aarch64", 500_000),
    ("alder_lake", 1_000_000_000),
    ("alpha_21064", 2_700_000_000),
    ("alpha_21164", 2_500_000_000),
    ("alpha_21264", 2_300_000_000),
    ("am29k", 3_000_000_000),
    ("amigaone_g3", 2_200_000_000),
    ("amigaone_g4", 2_100_000_000),
    ("apple_silicon", 800_000_000),
    ("arm", 500_000),
    ("arm11", 2_000_000_000),
    ("arm1176", 2_000_000_000),
    ("arm2", 4_000_000_000),
    ("arm3", 3_800_000_000),
    ("arm6", 3_500_000_000),
    ("arm7", 3_000_000_000),
    ("arm7tdmi", 3_000_000_000),
    ("arm9", 2_500_000_000),
    ("arm926ej", 2_300_000_000),
    ("armv7", 500_000),
    ("armv7l", 500_000),
    ("arrow_lake", 1_000_000_000),
    ("broadwell", 1_050_000_000),
    ("bulldozer", 1_300_000_000),
    ("cascade_lake", 1_000_000_000),
    ("cell_be", 2_200_000_000),
    ("clipper", 3_500_000_000),
    ("coffee_lake", 1_000_000_000),
    ("comet_lake", 1_000_000_000),
    ("core2", 1_300_000_000),
    ("core2duo", 1_300_000_000),
    ("cortex_a8", 1_800_000_000),
    ("cortex_a9", 1_500_000_000),
    ("cyrix_6x86", 2_500_000_000),
    ("cyrix_mediagx", 2_200_000_000),
    ("cyrix_mii", 2_300_000_000),
    ("dreamcast_sh4", 2_300_000_000),
    ("emotion_engine", 2_200_000_000),
    ("excavator", 1_200_000_000),
    ("g3", 1_800_000_000),
    ("g4", 2_500_000_000),
    ("g5", 2_000_000_000),
    ("gameboy_color_z80", 2_500_000_000),
    ("gameboy_z80", 2_600_000_000),
    ("gamecube_gekko", 2_100_000_000),
    ("gba_arm7", 2_300_000_000),
    ("genesis_68000", 2_500_000_000),
    ("haswell", 1_100_000_000),
    ("i386", 3_000_000_000),
    ("i486", 2_900_000_000),
    ("i860", 3_000_000_000),
    ("i960", 3_000_000_000),
    ("ia64", 2_500_000_000),
    ("itanium", 2_500_000_000),
    ("itanium2", 2_300_000_000),
    ("ivy_bridge", 1_100_000_000),
    ("ivybridge", 1_150_000_000),
    ("k10_phenom", 1_400_000_000),
    ("k5", 2_400_000_000),
    ("k6", 2_300_000_000),
    ("k6_2", 2_200_000_000),
    ("k6_3", 2_100_000_000),
    ("k7_athlon", 1_500_000_000),
    ("k8_athlon64", 1_500_000_000),
    ("kaby_lake", 1_000_000_000),
    ("m1", 1_200_000_000),
    ("m2", 1_150_000_000),
    ("m3", 1_100_000_000),
    ("m4", 1_050_000_000),
    ("mc68000", 3_000_000_000),
    ("mc88100", 3_000_000_000),
    ("mips_r10000", 2_400_000_000),
    ("mips_r12000", 2_300_000_000),
    ("mips_r2000", 3_000_000_000),
    ("mips_r3000", 2_900_000_000),
    ("mips_r4000", 2_700_000_000),
    ("mips_r4400", 2_600_000_000),
    ("mips_r5000", 2_500_000_000),
    ("modern", 800_000_000),
    ("modern_amd", 800_000_000),
    ("modern_intel", 800_000_000),
    ("n64_mips", 2_500_000_000),
    ("nds_arm7_arm9", 2_300_000_000),
    ("nehalem", 1_200_000_000),
    ("nes_6502", 2_800_000_000),
    ("ns32k", 3_500_000_000),
    ("pa_risc_1_0", 2_900_000_000),
    ("pa_risc_1_1", 2_700_000_000),
    ("pa_risc_2_0", 2_300_000_000),
    ("pegasos_g3", 2_200_000_000),
    ("pegasos_g4", 2_100_000_000),
    ("pentium", 2_500_000_000),
    ("pentium4", 1_500_000_000),
    ("pentium_d", 1_500_000_000),
    ("pentium_ii", 2_200_000_000),
    ("pentium_iii", 2_000_000_000),
    ("pentium_mmx", 2_400_000_000),
    ("pentium_pro", 2_300_000_000),
    ("piledriver", 1_300_000_000),
    ("power macintosh", 2_500_000_000),
    ("power1", 2_800_000_000),
    ("power2", 2_600_000_000),
    ("power3", 2_400_000_000),
    ("power4", 2_200_000_000),
    ("power5", 2_000_000_000),
    ("power6", 1_900_000_000),
    ("power7", 1_800_000_000),
    ("power8", 1_500_000_000),
    ("power9", 1_800_000_000),
    ("powerpc", 2_500_000_000),
    ("powerpc g3", 1_800_000_000),
    ("powerpc g3 (750)", 1_800_000_000),
    ("powerpc g4", 2_500_000_000),
    ("powerpc g4 (74xx)", 2_500_000_000),
    ("powerpc g5", 2_000_000_000),
    ("powerpc g5 (970)", 2_000_000_000),
    ("ps1_mips", 2_800_000_000),
    ("ps2_ee", 2_200_000_000),
    ("ps3_cell", 2_200_000_000),
    ("psp_allegrex", 2_000_000_000),
    ("raptor_lake", 1_000_000_000),
    ("retro", 1_400_000_000),
    ("riscv", 1_400_000_000),
    ("riscv32", 1_500_000_000),
    ("riscv64", 1_400_000_000),
    ("rocket_lake", 1_000_000_000),
    ("romp", 3_500_000_000),
    ("s390", 2_500_000_000),
    ("s390x", 2_300_000_000),
    ("sa1100", 2_700_000_000),
    ("sa1110", 2_700_000_000),
    ("sam440", 2_000_000_000),
    ("sam460", 1_900_000_000),
    ("sandy_bridge", 1_100_000_000),
    ("sandybridge", 1_100_000_000),
    ("saturn_sh2", 2_600_000_000),
    ("sh1", 2_700_000_000),
    ("sh2", 2_600_000_000),
    ("sh4", 2_300_000_000),
    ("sh4a", 2_200_000_000),
    ("skylake", 1_050_000_000),
    ("sms_z80", 2_600_000_000),
    ("snes_65c816", 2_700_000_000),
    ("sparc_v7", 2_900_000_000),
    ("sparc_v8", 2_700_000_000),
    ("sparc_v9", 2_500_000_000),
    ("steamroller", 1_200_000_000),
    ("strongarm", 2_800_000_000),
    ("t414", 3_500_000_000),
    ("t800", 3_500_000_000),
    ("transmeta_crusoe", 2_100_000_000),
    ("transmeta_efficeon", 1_900_000_000),
    ("transputer", 3_500_000_000),
    ("ultrasparc", 2_300_000_000),
    ("ultrasparc_t1", 1_900_000_000),
    ("ultrasparc_t2", 1_800_000_000),
    ("vax", 3_500_000_000),
    ("vax_780", 3_500_000_000),
    ("via_c3", 2_000_000_000),
    ("via_c7", 1_800_000_000),
    ("via_nano", 1_700_000_000),
    ("westmere", 1_200_000_000),
    ("wii_broadway", 2_000_000_000),
    ("winchip", 2_300_000_000),
    ("winchip_c6", 2_300_000_000),
    ("x86_64", 800_000_000),
    ("xbox360_xenon", 2_000_000_000),
    ("xbox_celeron", 1_800_000_000),
    ("xenon", 2_000_000_000),
    ("xscale", 2_500_000_000),
    ("z80", 2_600_000_000),
    ("zen", 1_100_000_000),
    ("zen2", 1_050_000_000),
    ("zen3", 1_000_000_000),
    ("zen4", 1_000_000_000),
    ("zen5", 1_000_000_000),
    ("zen_plus", 1_100_000_000),
];

/// The base multiplier of an arch string (compared case-insensitively, surrounding space ignored).
pub fn base_multiplier(arch: &str) -> u64 {
    let key = arch.trim().to_ascii_lowercase();
    BASE_MULTIPLIERS.binary_search_by(|(k, _)| (*k).cmp(key.as_str())).map_or(UNIT, |i| BASE_MULTIPLIERS[i].1)
}

/// `m = 1 + max(0, (base - 1) * (1 - 0.15 * years))` for base > 1; bases <= 1 never change.
/// `years = age_seconds / YEAR_SECONDS`. Exact integer arithmetic, rounded down.
pub fn decayed(base: u64, age_seconds: u64) -> u64 {
    if base <= UNIT {
        return base;
    }
    // 1 - 0.15 * age / Y  ==  (100 * Y - 15 * age) / (100 * Y)
    let denom = 100 * YEAR_SECONDS as u128;
    let keep = denom.saturating_sub(15 * age_seconds as u128);
    let bonus = (base - UNIT) as u128 * keep / denom;
    UNIT + bonus as u64
}

/// The hardware weight of an arch at a chain age.
pub fn hardware_weight(arch: &str, age_seconds: u64) -> u64 {
    decayed(base_multiplier(arch), age_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vector V2: the reference's float multipliers by slot (600 s slots), within 1 weight unit.
    #[test]
    fn vector_v2() {
        let table: &[(u64, &[(&str, f64)])] = &[
            (0, &[("g4", 2.5), ("g5", 2.0), ("modern", 0.8), ("aarch64", 0.0005), ("386", 3.0), ("m1", 1.2), ("unknown-arch", 1.0)]),
            (51210, &[("g4", 2.280929158110883), ("g5", 1.853952772073922), ("modern", 0.8), ("aarch64", 0.0005),
                      ("386", 2.707905544147844), ("m1", 1.1707905544147843), ("unknown-arch", 1.0)]),
            (52560, &[("g4", 2.2751540041067764), ("g5", 1.8501026694045175), ("modern", 0.8), ("aarch64", 0.0005),
                      ("386", 2.700205338809035), ("m1", 1.1700205338809035), ("unknown-arch", 1.0)]),
            (525960, &[("g4", 1.0), ("g5", 1.0), ("modern", 0.8), ("aarch64", 0.0005), ("386", 1.0), ("m1", 1.0), ("unknown-arch", 1.0)]),
        ];
        for (slot, archs) in table {
            for (arch, want) in *archs {
                let got = hardware_weight(arch, slot * 600) as f64;
                let want = want * 1e9;
                assert!((got - want).abs() <= 1.0, "slot {slot} {arch}: got {got}, want {want}");
            }
        }
    }

    #[test]
    fn decay_never_goes_below_one_and_is_monotone() {
        let mut last = u64::MAX;
        for years_x10 in 0..200u64 {
            let w = hardware_weight("386", years_x10 * YEAR_SECONDS / 10);
            assert!(w >= UNIT && w <= last);
            last = w;
        }
        assert_eq!(hardware_weight("G4 ", 0), 2_500_000_000);
        assert_eq!(hardware_weight("aarch64", u64::MAX), 500_000);
        assert_eq!(hardware_weight("PowerPC G4 (74xx)", 0), 2_500_000_000);
        assert!(BASE_MULTIPLIERS.windows(2).all(|w| w[0].0 < w[1].0), "sorted, no duplicates (binary search)");
    }
}
