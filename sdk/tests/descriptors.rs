//! Descriptors passed to a container (`CreateOptions::pass_fds`,
//! `ExecOptions::pass_fds`) arrive at 3, 4, … in the order given, whatever
//! numbers they had in the embedding process, even numbers inside the range
//! they go to; nothing else of the embedder's reaches the container. One
//! test in its own binary: it opens its files before anything else does,
//! so that their numbers fall inside that range.

mod common;

use std::os::fd::AsRawFd;

use berth::ExitStatus;
use common::*;

#[test]
fn passed_descriptors_arrive_in_order_and_nothing_else_does() {
    // Opened before the async runtime exists: the lowest numbers, which
    // are the ones the container's range covers.
    let (_dir, mut fds) = numbered_files(6);
    let numbers: Vec<_> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    // Reversed: the file at the highest number goes to 3, and each source
    // but one sits at a number another one goes to.
    fds.reverse();
    let order: Vec<usize> = (0..6).rev().collect();
    let in_range = numbers.iter().filter(|&&n| (3..9).contains(&n)).count();

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    tokio.block_on(async {
        let rt = runtime().await;
        let ctr = create_piped_with_fds(&rt, "fds", spec(&fds_report(6)), fds)
            .await
            .unwrap();
        ctr.start().await.unwrap();
        let out = finish(ctr).await.unwrap();
        assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
        assert_eq!(
            out.stdout,
            expected_fds(&order),
            "sources at {numbers:?} ({in_range} inside 3..9): {out:?}"
        );

        // The same for a process started in a running container.
        let ctr = sleeping(&rt, "fds-exec").await;
        let (_dir, mut fds) = numbered_files(3);
        fds.swap(0, 2);
        let stdout = exec_fds_report(&ctr, fds).await;
        assert_eq!(stdout, expected_fds(&[2, 1, 0]));
        ctr.force_delete().await.unwrap();
    });
    // The case this test is about (sources inside the range) did happen.
    assert!(in_range > 0, "no source inside 3..9: {numbers:?}");
}
