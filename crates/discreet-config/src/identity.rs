//! Reading the `identity` section by hand: serde's enum support would accept it too, but
//! when both keys (or neither) are given it says only "expected end of mapping"; this says
//! which keys are meant.

use std::fmt;

use serde::de::{Error, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::IdentityConfig;

const KEYS: &[&str] = &["static", "service_account", "spiffe"];

impl<'de> Deserialize<'de> for IdentityConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(IdentityVisitor)
    }
}

struct IdentityVisitor;

impl<'de> Visitor<'de> for IdentityVisitor {
    type Value = IdentityConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping with exactly one of `static`, `service_account`, `spiffe`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IdentityConfig, A::Error> {
        let mut found: Option<IdentityConfig> = None;
        while let Some(key) = map.next_key::<String>()? {
            if found.is_some() {
                return Err(A::Error::custom(
                    "set exactly one of `static`, `service_account`, `spiffe`",
                ));
            }
            found = Some(match key.as_str() {
                "static" => IdentityConfig::Static(map.next_value()?),
                "service_account" => IdentityConfig::ServiceAccount(map.next_value()?),
                "spiffe" => IdentityConfig::Spiffe(map.next_value()?),
                other => return Err(A::Error::unknown_field(other, KEYS)),
            });
        }
        found.ok_or_else(|| {
            A::Error::custom("set exactly one of `static`, `service_account`, `spiffe`")
        })
    }
}
