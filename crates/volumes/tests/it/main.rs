//! The integration tests of volume sets: one test binary.

mod golden;
mod one_pass;
