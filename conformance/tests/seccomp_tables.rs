//! berth's committed system call tables are what the generator prints from
//! the libseccomp they name: nobody edited them by hand, and they are not
//! stale. With another libseccomp version the comparison says nothing, and
//! the test says so.

#[test]
fn committed_seccomp_tables_are_the_generators_output() {
    let committed = include_str!("../../sdk/src/security/seccomp/table.rs");
    let v = libseccomp::ScmpVersion::current().expect("libseccomp version");
    let here = format!("libseccomp {}.{}.{}", v.major, v.minor, v.micro);
    if !committed.contains(&format!("SOURCE: &str = \"{here}\"")) {
        eprintln!("skipped: the tables come from another libseccomp than this {here}");
        return;
    }
    let generated = berth_conformance::seccomp_oracle::generate_tables();
    assert!(
        generated == committed,
        "sdk/src/security/seccomp/table.rs differs from the generator's output: \
         cargo run -p berth-conformance --bin gen-seccomp-tables > sdk/src/security/seccomp/table.rs"
    );
}
