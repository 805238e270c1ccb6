//! The oracles of `oracles.rs` (shared with the fuzz targets in `fuzz/`) on
//! generated input: the short, always-run version of each fuzz target.

use proptest::prelude::*;

use crate::oracles;

/// Bytes rich in what the parsers look at.
fn text() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => proptest::collection::vec(any::<u8>(), 0..300),
        2 => "[ -~\\n\\r\\t\u{1}é]{0,200}".prop_map(String::into_bytes),
        1 => "(\\{\"work_id\":\"[a-z%./~]{0,6}\",\"artifact_id\":\"[a-z.]{0,4}\",\"url\":\"https?://[a-zA-Z0-9.:%/?#]{0,20}\"(,\"sha256\":\"[0-9a-fA-F]{0,64}\")?(,\"size\":-?[0-9]{1,3})?\\}\\n){0,4}"
            .prop_map(|s| [b"\x00".as_slice(), s.as_bytes()].concat()),
        1 => "work_id,artifact_id,url\\n([a-z\"]{0,4},[a-z.]{0,4},https?://[a-z.%/]{0,12}\\n){0,4}"
            .prop_map(|s| [b"\x01".as_slice(), s.as_bytes()].concat()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// The manifest oracle: numbered lines, accepted jobs fully formed.
    #[test]
    fn manifest_oracle(data in text()) {
        oracles::manifest(&data);
    }

    /// Canonicalization agrees with the rules worked out independently.
    #[test]
    fn url_differential_oracle(data in proptest::collection::vec(any::<u8>(), 0..120)) {
        oracles::url_differential(&data);
    }

    /// Any text: refused, or a fixed point.
    #[test]
    fn any_url_oracle(data in text()) {
        oracles::any_url(&data);
    }

    /// File names: one component inside the folder, round trip, no sharing.
    #[test]
    fn file_name_oracle(data in text()) {
        oracles::file_names(&data);
    }
}
