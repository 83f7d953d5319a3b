//! Arbitrary bytes through the guard extractors: subject ids, jurisdiction and birth dates
//! read at the reference schema's paths and at paths taken from the input itself. Nothing
//! may panic, and whatever comes back must be consistent.
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use discreet_redact::{date::CivilDate, extract_birth_date, extract_strings, last_string};
use libfuzzer_sys::fuzz_target;

/// profile.v1.Profile: subject_id (1), jurisdiction (6), demographics.birth_date (5.1),
/// orders.skus (10.5, through a repeated message), and a deep path.
const PATHS: &[&[u32]] = &[&[1], &[6], &[5, 1], &[10, 5], &[3, 1], &[1, 1, 1, 1, 1, 1]];

fuzz_target!(|data: &[u8]| {
    // The first byte chooses an extra path of up to three field numbers from the input.
    let (extra, body) = match data.split_first() {
        Some((&n, rest)) if rest.len() >= 3 => {
            let len = usize::from(n % 4);
            let path: Vec<u32> = rest[..len].iter().map(|&b| u32::from(b % 32)).collect();
            (path, &rest[len..])
        }
        _ => (Vec::new(), data),
    };
    for path in PATHS.iter().copied().chain(std::iter::once(extra.as_slice())) {
        let mut all = Vec::new();
        let strings = extract_strings(body, path, &mut all);
        let last = last_string(body, path);
        match (&strings, &last) {
            (Ok(()), Ok(l)) => assert_eq!(*l, all.last().copied(), "last_string disagrees"),
            (Err(a), Err(b)) => assert_eq!(a, b, "extractors report different errors"),
            _ => panic!("extract_strings {strings:?} but last_string {last:?}"),
        }
        for s in &all {
            // Every string borrowed from the input lies inside it.
            let range = body.as_ptr_range();
            assert!(range.contains(&s.as_ptr()) || s.is_empty());
        }
        for is_message in [false, true] {
            if let Ok(Some(date)) = extract_birth_date(body, path, is_message) {
                // What the age guard does with it.
                assert!(CivilDate::new(date.year, date.month, date.day) == Some(date));
                let _ = date.age_on(CivilDate::from_unix(1_795_000_000));
            }
        }
    }
});
