//! Step 6 of a batch read, as pure logic: the request without the subjects that may not be
//! read. The store never sees a subject without a grant; the count withheld goes in the
//! trailers. Used by `service.rs` and, through the `fuzzing` feature, by the request-path
//! fuzz target, so the fuzzer checks the code that runs.
use discreet_redact::{RedactError, fields};

/// `message` without the occurrences of top-level field `number` (a subject id) that
/// `keep` refuses, and how many were taken out. Every other field is copied as it came.
/// `keep` may fail (the access log refusing an event): the call then fails.
pub(crate) fn filter_batch<E>(
    message: &[u8],
    number: u32,
    map_err: impl Fn(RedactError) -> E,
    mut keep: impl FnMut(&str) -> Result<bool, E>,
) -> Result<(Vec<u8>, u64), E> {
    let mut kept = Vec::with_capacity(message.len());
    let mut withheld = 0u64;
    for f in fields(message) {
        let f = f.map_err(&map_err)?;
        if f.number == number && f.length_delimited {
            // Not UTF-8: no grant can name it, so it is withheld like any stranger.
            let subject = std::str::from_utf8(f.payload).unwrap_or("");
            if !keep(subject)? {
                withheld += 1;
                continue;
            }
        }
        kept.extend_from_slice(f.raw);
    }
    Ok((kept, withheld))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use discreet_proto::profile::v1::BatchGetProfilesRequest;
    use prost::Message;

    use super::filter_batch;

    #[test]
    fn only_allowed_subjects_remain_and_the_rest_are_counted() {
        let request = BatchGetProfilesRequest {
            subject_ids: vec!["a".into(), "b".into(), "c".into(), "b".into()],
        }
        .encode_to_vec();
        let (kept, withheld) = filter_batch(
            &request,
            1,
            |e| e.to_string(),
            |s| Ok::<_, String>(s != "b"),
        )
        .unwrap();
        assert_eq!(withheld, 2);
        assert_eq!(
            BatchGetProfilesRequest::decode(kept.as_slice())
                .unwrap()
                .subject_ids,
            ["a", "c"]
        );
        let refused = filter_batch(&request, 1, |e| e.to_string(), |_| Err("full".to_owned()));
        assert_eq!(refused, Err("full".to_owned()));
        assert!(filter_batch(&[0x0a, 0x05, b'x'], 1, |e| e.to_string(), |_| Ok(true)).is_err());
    }
}
