//! Job manifests come from pull requests: parsing any bytes must not panic,
//! and whatever parses must round-trip through its own YAML.
#![no_main]

use collective_policy::JobManifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = JobManifest::parse("jobs/fuzz/job.yaml", text) {
        let again =
            JobManifest::parse("jobs/fuzz/job.yaml", &m.to_yaml()).expect("own YAML parses");
        assert_eq!(again, m);
    }
});
