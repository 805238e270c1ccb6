//! Integration tests of the HTTP fetcher against the in-process test server.

// Fetchers, body collection, a one-shot server with canned answers.
mod support;
// The inventory registration.
mod registry;
// Full, ranged, restarted and unsatisfiable GETs; redirects that work.
mod get;
// Classification of every fault: statuses, Retry-After, truncation, bad redirects, timeouts, size cap.
mod errors;
// User agent, extra headers, proxies.
mod identity;
// TLS trust: extra CAs, certificate errors, --insecure.
mod trust;
// The request deadline and the low-speed abort.
mod deadlines;
// Oracles of the parsers of outside input and the classification, shared with the fuzz targets.
mod oracles;
// The oracles on generated input (property tests).
mod parsers;
