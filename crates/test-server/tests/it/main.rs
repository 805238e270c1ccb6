//! Integration tests of the test server, spoken to over raw TCP.

// A minimal HTTP/1.1 client, so these tests depend on nothing but std.
mod client;
// Range, If-Range, HEAD, 404, stats, replace, stop on drop, many connections.
mod serving;
// One test per fault.
mod faults;
