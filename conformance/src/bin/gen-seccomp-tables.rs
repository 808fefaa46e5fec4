//! Writes `sdk/src/security/seccomp/table.rs`, berth's system call tables,
//! from the tables of the libseccomp this is linked with (Debian 12's
//! libseccomp 2.5.4; libseccomp generates its own from the kernel's
//! `syscall*.tbl` files). libseccomp is the source because berth must name
//! exactly the calls runc names: runc resolves a profile's names with it.
//!
//! ```sh
//! cargo run -p berth-conformance --bin gen-seccomp-tables > sdk/src/security/seccomp/table.rs
//! ```
//!
//! `tests/seccomp_tables.rs` checks that the committed file is what this
//! prints, when the libseccomp version is the one the file names.

fn main() {
    print!("{}", berth_conformance::seccomp_oracle::generate_tables());
}
