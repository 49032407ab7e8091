//! Integration tests: run the real `pybackup` binary on trees built in
//! temporary directories and compare the results exactly.

mod compress;
mod crash;
mod encrypt;
mod extract;
mod fidelity;
mod interop;
mod jobs;
mod keys;
mod peers;
mod protect;
mod remote;
mod salvage;
mod sealed_repo;
mod sets;
mod sharing;
mod snapshots;
mod support;
mod v3;
mod volumes;
mod zstd;
