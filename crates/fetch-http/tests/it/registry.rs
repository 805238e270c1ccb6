use oncefetch_core::registry::fetcher_factories;
use oncefetch_core::FetcherConfig;

#[test]
fn http_factory_is_registered_for_both_schemes() {
    // Naming a symbol next to the registration keeps the linker from dropping it.
    let direct = oncefetch_fetch_http::open(&FetcherConfig::default()).unwrap();
    assert!(format!("{direct:?}").contains("HttpFetcher"));

    let factories = fetcher_factories();
    let http = factories
        .iter()
        .find(|f| f.name == "http")
        .unwrap_or_else(|| panic!("no http factory in {factories:?}"));
    assert_eq!(http.schemes, ["http", "https"]);
    for scheme in ["http", "HTTPS"] {
        let fetcher = oncefetch_core::open_fetcher(scheme, &FetcherConfig::default()).unwrap();
        assert!(format!("{fetcher:?}").contains("HttpFetcher"));
    }
}
