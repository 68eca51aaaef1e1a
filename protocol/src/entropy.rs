//! Hardware entropy profiles: the fingerprint's measured timings reduced to five integers, so that
//! one machine's measurements can be recognised under another serial (a copied fingerprint) or a
//! different machine behind the same serial. A serial is a string the miner chooses; the timings
//! are the machine. The rules that use profiles are in `enrollment` (PROTOCOL.md §7.1).
//!
//! Every step is integer arithmetic on the miner's numbers after one correctly rounded IEEE 754
//! multiplication (or division, for a derived coefficient of variation), so every node computes
//! the same profile.

use crate::canonical_json::Value;

/// The measured fields, in profile order: clock drift cv, L1 and L2 latency, thermal drift ratio,
/// instruction jitter cv (the reference node's `CORE_ENTROPY_FIELDS`).
pub const FIELDS: [&str; 5] = ["clock_cv", "cache_l1", "cache_l2", "thermal_ratio", "jitter_cv"];

/// Buckets per octave: a bucket is 1/64 of a doubling wide (about 1.1 %).
pub const BUCKETS_PER_OCTAVE: u32 = 64;

/// The same serial with both cache latencies this many buckets or more away is another machine
/// (the reference's two hard failures on stable fields, 30 %): latencies less than 2^(24/64)
/// (29.7 %) apart never are, 2^(25/64) (31.1 %) or more apart always are.
pub const MISMATCH_BUCKETS: u16 = 25;

/// A profile: per field, 0 when the miner sent nothing usable (absent, not a number, not
/// positive), else `1 + bucket(value)` (see [`bucket`]). At most 1 + 63 * 64 + 63 = 4096.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Profile(pub [u16; 5]);

/// `floor(2^(32 + k/64))` for k = 0..63: where each 64th of an octave starts, for a mantissa
/// scaled to [2^32, 2^33). Exact integer 64th roots of 2^(2048 + k) (PROTOCOL.md §7.1 lists them).
pub const FINE_THRESHOLDS: [u64; 64] = [
    4294967296, 4341736423, 4389014833, 4436808071, 4485121743, 4533961517, 4583333121, 4633242346,
    4683695047, 4734697142, 4786254614, 4838373510, 4891059943, 4944320094, 4998160209, 5052586606,
    5107605667, 5163223846, 5219447667, 5276283726, 5333738689, 5391819295, 5450532358, 5509884764,
    5569883475, 5630535529, 5691848041, 5753828203, 5816483284, 5879820634, 5943847683, 6008571941,
    6074000999, 6140142534, 6207004302, 6274594148, 6342919998, 6411989868, 6481811860, 6552394164,
    6623745058, 6695872913, 6768786188, 6842493437, 6917003306, 6992324533, 7068465955, 7145436503,
    7223245205, 7301901188, 7381413679, 7461792004, 7543045592, 7625183973, 7708216782, 7792153760,
    7877004751, 7962779709, 8049488695, 8137141880, 8225749546, 8315322086, 8405870006, 8497403929,
];

/// The bucket of a positive measurement, log-uniform (each 2^(1/64) wide, about 1.1 %):
/// `m = floor(v * 1e6)` (micro-units, saturating at 2^64-1); `e = floor(log2 m)`; the mantissa
/// `x = floor(m * 2^32 / 2^e)` in [2^32, 2^33); `fine` = the number of `FINE_THRESHOLDS[1..]` at
/// or below `x`; bucket = `e * 64 + fine`, and the profile stores `1 + bucket`. `m = 0` (below
/// 1e-6, or not positive) is "no signal": 0.
pub fn bucket(v: f64) -> u16 {
    // NaN and everything not above zero. `as` saturates; the product is correctly rounded.
    if v.is_nan() || v <= 0.0 {
        return 0;
    }
    bucket_of_micro((v * 1e6) as u64)
}

/// [`bucket`] of `m` micro-units.
pub fn bucket_of_micro(m: u64) -> u16 {
    if m == 0 {
        return 0;
    }
    let e = 63 - m.leading_zeros();
    let x = ((u128::from(m) << 32) >> e) as u64;
    let fine = FINE_THRESHOLDS[1..].partition_point(|t| *t <= x) as u32;
    (1 + e * BUCKETS_PER_OCTAVE + fine) as u16
}

fn number(v: Option<&Value>) -> f64 {
    v.and_then(Value::as_f64).unwrap_or(0.0)
}

/// The first of `keys` that holds a positive number in `data`, as the reference reads aliases
/// (`L1` or `l1_ns`, ...); 0 when none does.
fn first_positive(data: Option<&Value>, keys: &[&str]) -> f64 {
    keys.iter().map(|k| number(data.and_then(|d| d.get(k)))).find(|v| *v > 0.0).unwrap_or(0.0)
}

impl Profile {
    /// The profile of an attestation body (its `fingerprint.checks`):
    /// - `clock_cv`: `clock_drift.data.cv`;
    /// - `cache_l1`, `cache_l2`: `cache_timing.data.L1` or `l1_ns`, `L2` or `l2_ns`;
    /// - `thermal_ratio`: `thermal_drift.data.ratio` or `drift_ratio`;
    /// - `jitter_cv`: `instruction_jitter.data.cv`, or `int_stdev / int_avg_ns` when both are positive.
    pub fn of_body(body: &Value) -> Profile {
        let checks = body.get("fingerprint").and_then(|f| f.get("checks"));
        let data = |check: &str| checks.and_then(|c| c.get(check)).and_then(|c| c.get("data"));
        let jitter = data("instruction_jitter");
        let jitter_cv = match first_positive(jitter, &["cv"]) {
            cv if cv > 0.0 => cv,
            _ => {
                let (avg, stdev) = (number(jitter.and_then(|j| j.get("int_avg_ns"))), number(jitter.and_then(|j| j.get("int_stdev"))));
                if avg > 0.0 && stdev > 0.0 { stdev / avg } else { 0.0 }
            }
        };
        Profile([
            bucket(first_positive(data("clock_drift"), &["cv"])),
            bucket(first_positive(data("cache_timing"), &["L1", "l1_ns"])),
            bucket(first_positive(data("cache_timing"), &["L2", "l2_ns"])),
            bucket(first_positive(data("thermal_drift"), &["ratio", "drift_ratio"])),
            bucket(jitter_cv),
        ])
    }

    /// All five fields carry signal. Only a complete profile can bind hardware above 1.0x: a
    /// sparse one could not be compared (the reference's `entropy_insufficient`).
    pub fn is_complete(&self) -> bool {
        self.0.iter().all(|b| *b > 0)
    }

    /// A copy of another machine's measurements: both complete and every field in the same
    /// bucket (each measurement within about 1 % of the other's; honest machines, whose volatile
    /// clock and jitter measurements differ by far more, practically never are).
    pub fn collides(&self, other: &Profile) -> bool {
        self.is_complete() && self == other
    }

    /// For the same serial: both cache latencies moved [`MISMATCH_BUCKETS`] or more (normal drift
    /// moves volatile fields, not caches).
    pub fn mismatches(&self, earlier: &Profile) -> bool {
        self.is_complete() && earlier.is_complete() && [1, 2].iter().all(|&i| self.0[i].abs_diff(earlier.0[i]) >= MISMATCH_BUCKETS)
    }

    /// The text form carried in settlement bindings: the five numbers joined by `.`.
    pub fn to_text(&self) -> String {
        self.0.iter().map(u16::to_string).collect::<Vec<_>>().join(".")
    }

    pub fn from_text(s: &str) -> Option<Profile> {
        let parts: Vec<u16> = s.split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
        Some(Profile(parts.try_into().ok()?))
    }

    /// The profile packed 12 bits a field: what an index is keyed by.
    pub fn key(&self) -> u64 {
        self.0.iter().fold(0u64, |acc, b| (acc << 12) | u64::from(*b & 0xfff))
    }

    /// A short name for the profile in refusals (the reference shows a 16-hex collision hash).
    pub fn short_hash(&self) -> String {
        hex::encode(&crate::crypto::sha256(self.to_text().as_bytes())[..8])
    }
}


/// Bound profiles by key: who owns which measurements, found in O(log n). The node keeps the same
/// index in its database; this one is for the settlement's in-epoch view, the tests and the
/// benchmark.
#[derive(Clone, Debug, Default)]
pub struct ProfileIndex {
    cells: std::collections::BTreeMap<u64, Vec<(Profile, String)>>,
}

impl ProfileIndex {
    pub fn insert(&mut self, profile: Profile, owner: String) {
        self.cells.entry(profile.key()).or_default().push((profile, owner));
    }

    /// The first owner (in insertion order) other than `not` whose profile collides with `p`.
    pub fn collision(&self, p: &Profile, not: &str) -> Option<(&Profile, &str)> {
        if !p.is_complete() {
            return None;
        }
        self.cells.get(&p.key())?.iter().find(|(q, owner)| owner != not && p.collides(q)).map(|(q, o)| (q, o.as_str()))
    }

    pub fn len(&self) -> usize {
        self.cells.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_are_log_spaced_and_integer() {
        assert_eq!(bucket(0.0), 0);
        assert_eq!(bucket(-1.0), 0);
        assert_eq!(bucket(f64::NAN), 0);
        assert_eq!(bucket(1e-7), 0, "below a micro-unit is no signal");
        assert_eq!(bucket(1e-6), 1);
        // 1.0 = 1e6 micro: 2^19 <= 1e6 < 2^20, 1e6 / 2^19 = 1.907 = 2^(59.6/64): fine 59.
        assert_eq!(bucket(1.0), 1 + 19 * 64 + 59);
        // Each threshold starts its bucket; one below it is still in the bucket before.
        for (k, t) in FINE_THRESHOLDS.iter().enumerate().skip(1) {
            assert_eq!(bucket_of_micro(*t), 1 + 32 * 64 + k as u16);
            assert_eq!(bucket_of_micro(*t - 1), 32 * 64 + k as u16);
        }
        // Doubling moves one octave.
        assert_eq!(bucket(2.0), bucket(1.0) + 64);
        assert!(bucket(f64::MAX) <= 4096);
    }

    /// Vector E1: a Linux x86_64 field miner's fingerprint (the project's testkit body).
    #[test]
    fn vector_e1_profile_of_a_field_miner() {
        let key = crate::crypto::Keypair::from_seed(&[1; 32]);
        let body = crate::testkit::linux_miner_body(&key, 0, "box-0", "n", "SN");
        let v = crate::canonical_json::parse(&body).unwrap();
        let p = Profile::of_body(&v);
        assert!(p.is_complete());
        // Computed independently (Python, the same rule from PROTOCOL.md §7.1).
        assert_eq!(p.to_text(), "904.1294.1401.1277.940");
        assert_eq!(Profile::from_text(&p.to_text()), Some(p));
    }

    fn arb_profile() -> impl Strategy<Value = Profile> {
        prop::array::uniform5(1u16..=4096).prop_map(Profile)
    }

    proptest! {
        #[test]
        fn buckets_are_monotone(a in 1e-6f64..1e9, b in 1e-6f64..1e9) {
            if a <= b { prop_assert!(bucket(a) <= bucket(b)); } else { prop_assert!(bucket(a) >= bucket(b)); }
        }

        /// An exact copy always collides, 1.1 % apart on any field never does; 31.1 % apart on both
        /// caches is always a mismatch, less than 29.7 % on either never is. (Values of at least
        /// 0.1, so flooring to micro-units moves them by under 1e-5.)
        #[test]
        fn tolerance_in_percent(vals in prop::array::uniform5(1e-1f64..1e4), far in 1.0110f64..4.0,
                                i in 0usize..5, j in 1.3110f64..3.0, drift in 1.0f64..1.2966) {
            let p = Profile(vals.map(bucket));
            prop_assert!(p.collides(&Profile(vals.map(bucket))));
            let mut apart = vals;
            apart[i] *= far;
            prop_assert!(!p.collides(&Profile(apart.map(bucket))));
            let mut moved = vals;
            moved[1] *= j;
            moved[2] /= j;
            prop_assert!(Profile(moved.map(bucket)).mismatches(&p));
            let mut drifted = vals;
            drifted[1] *= drift;
            drifted[2] *= j;
            prop_assert!(!Profile(drifted.map(bucket)).mismatches(&p));
        }

        /// The index finds exactly what a scan of every bound profile finds.
        #[test]
        fn index_agrees_with_a_scan(bound in prop::collection::vec((arb_profile(), 0u8..4), 0..200), q in arb_profile()) {
            // Cluster them so that collisions happen: snap fields to a few values.
            let snap = |p: Profile| Profile(p.0.map(|b| 500 + b % 2));
            let mut index = ProfileIndex::default();
            for (p, o) in &bound { index.insert(snap(*p), format!("s{o}")); }
            let q = snap(q);
            for not in ["s0", "s9"] {
                let scan = bound.iter().any(|(p, o)| format!("s{o}") != not && q.collides(&snap(*p)));
                prop_assert_eq!(index.collision(&q, not).is_some(), scan);
            }
        }
    }
}
