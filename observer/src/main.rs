//! Placeholder: the observer arrives with its own issue.
fn main() {}
