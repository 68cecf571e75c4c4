//! The node policy is operator-written config, but parsing must still
//! never panic, and the digest must be stable across a round trip.
#![no_main]

use collective_policy::NodePolicy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = NodePolicy::from_yaml("node.yaml", text) {
        let again = NodePolicy::from_yaml("node.yaml", &p.to_yaml()).expect("own YAML parses");
        assert_eq!(again.digest(), p.digest());
    }
});
