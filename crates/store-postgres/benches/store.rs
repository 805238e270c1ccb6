//! Placeholder so the workspace parses (the postgres helper replaces this file).
fn main() {}
