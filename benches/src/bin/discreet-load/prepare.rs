//! `discreet-load prepare --keys DIR --out DIR`: the request bodies and caller headers of
//! each load scenario, as files `h2load -d` and `-H` take.
use std::{path::Path, time::Duration};

use discreet_consent::keyring::DevKeyring;
use discreet_proto::profile::v1::{
    BatchGetProfilesRequest, GetProfileRequest, StreamProfilesRequest,
};
use prost::Message;

use crate::{Error, Flags};

/// The subject `GetProfile` reads: a synthetic adult of the reference store.
pub(crate) const SUBJECT: &str = "u-000042";
/// A consented purpose and a caller allowed to declare it.
pub(crate) const CONSENTED: (&str, &str) = ("personalize", "shop/recommender");
/// A purpose on legitimate interests (no consent tokens), for batches and streams.
pub(crate) const LEGITIMATE: (&str, &str) = ("essential.fraud_detection", "risk/scorer");
/// Tokens outlive any run of the benchmark.
const TTL: Duration = Duration::from_secs(4 * 3600);

/// A protobuf message as one uncompressed gRPC frame.
pub(crate) fn frame(message: &impl Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(0);
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// `authorization` and `x-discreet-purpose` lines for `caller` declaring `purpose`.
pub(crate) fn caller_headers(
    keys: &DevKeyring,
    (purpose, caller): (&str, &str),
) -> Result<Vec<(String, String)>, Error> {
    Ok(vec![
        (
            "authorization".into(),
            format!("Bearer {}", keys.caller_token(caller, TTL)?),
        ),
        ("x-discreet-purpose".into(), purpose.into()),
    ])
}

/// A consent token for [`SUBJECT`] granting the consented purpose.
pub(crate) fn consent(keys: &DevKeyring) -> Result<String, Error> {
    Ok(keys.consent_token(SUBJECT, &[CONSENTED.0], &[], TTL)?.0)
}

fn write_headers(path: &Path, headers: &[(String, String)]) -> Result<(), Error> {
    let text: String = headers.iter().map(|(n, v)| format!("{n}: {v}\n")).collect();
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()).into())
}

pub(crate) fn run(args: &[String]) -> Result<(), Error> {
    let flags = Flags::parse(args)?;
    let keys = DevKeyring::open(Path::new(flags.req("keys")?))?;
    let out = Path::new(flags.req("out")?);
    std::fs::create_dir_all(out)?;

    let get = GetProfileRequest {
        subject_id: SUBJECT.into(),
    };
    std::fs::write(out.join("get.bin"), frame(&get))?;
    let batch = BatchGetProfilesRequest {
        subject_ids: (0..100).map(|i| format!("u-{i:06}")).collect(),
    };
    std::fs::write(out.join("batch100.bin"), frame(&batch))?;
    let stream = StreamProfilesRequest {
        segment: "all".into(),
        limit: flags.num("stream-limit", 1000)?,
    };
    std::fs::write(out.join("stream.bin"), frame(&stream))?;

    let mut consented = caller_headers(&keys, CONSENTED)?;
    consented.push(("x-discreet-consent".into(), consent(&keys)?));
    write_headers(&out.join("headers-consented.txt"), &consented)?;
    write_headers(
        &out.join("headers-legitimate.txt"),
        &caller_headers(&keys, LEGITIMATE)?,
    )?;
    Ok(())
}
