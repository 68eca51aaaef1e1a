//! Chain spec TOML: what validates round-trips and its time arithmetic does not overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::ChainSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(spec) = ChainSpec::from_toml(text) {
        assert_eq!(ChainSpec::from_toml(&spec.to_toml()).ok().as_ref(), Some(&spec));
        for t in [0, 1, u64::MAX / 2, u64::MAX] {
            let _ = (spec.slot_at(t), spec.epoch_at(t), spec.epoch_of_slot(t), spec.first_slot(t));
            let _ = (spec.epoch_end_unix(t), spec.settle_at_unix(t), spec.age_seconds(t));
        }
    }
});
