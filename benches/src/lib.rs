//! Shared fixtures for the benchmarks (benches/): the reference schema, the shipped policy
//! and a realistic, fully populated profile.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashMap;
use std::path::Path;

use discreet_policy::Policy;
use discreet_proto::profile::v1::{
    Contact, Demographics, Gender, GeoPoint, Inferences, LifeEvent, LoyaltyTier, MaritalStatus,
    Order, OrderStatus, PersonName, PostalAddress, Preferences, Profile, profile::PaymentMethod,
};
use discreet_schema::Schema;
use prost_types::Timestamp;

/// The "current time" the benchmarks rewrite at: every timestamp of [`typical_profile`]
/// is shortly before it, so no freshness limit withholds anything.
pub const NOW: i64 = 1_795_000_000;

/// The shipped policy's text (`config/policy.yaml`).
pub const SHIPPED_POLICY: &str = include_str!("../../config/policy.yaml");

const DAY: i64 = 86_400;

fn ago(secs: i64) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: NOW - secs,
        nanos: 250_000_000,
    })
}

/// The reference schema (proto/, with its privacy annotations).
#[must_use]
pub fn reference_schema() -> Schema {
    Schema::from_descriptor_set(discreet_proto::FILE_DESCRIPTOR_SET).expect("reference schema")
}

/// The shipped policy, validated against `schema`.
#[must_use]
pub fn shipped_policy(schema: &Schema) -> Policy {
    Policy::parse(Path::new("config/policy.yaml"), SHIPPED_POLICY, schema)
        .unwrap_or_else(|d| panic!("config/policy.yaml does not load: {d:?}"))
}

fn order(id: &str, days_ago: i64, total_cents: i64, skus: &[&str], status: OrderStatus) -> Order {
    Order {
        order_id: id.into(),
        placed_at: ago(days_ago * DAY),
        total_cents,
        currency: "EUR".into(),
        skus: skus.iter().map(|s| (*s).into()).collect(),
        status: status.into(),
    }
}

/// A realistic profile with every field of `profile.v1.Profile` set (of the payment oneof,
/// the card), in jurisdiction DE, born 1988-07-14, all timestamps recent relative to
/// [`NOW`].
#[must_use]
pub fn typical_profile() -> Profile {
    Profile {
        subject_id: "usr_01J9Z6K4W8QH3T2M5N7P9R1S3V".into(),
        username: "lena.hoffmann88".into(),
        name: Some(PersonName {
            first: "Lena".into(),
            last: "Hoffmann".into(),
            preferred: "Lena".into(),
        }),
        contact: Some(Contact {
            email: "lena.hoffmann@example.de".into(),
            phone: "+49 30 901820 47".into(),
            address: Some(PostalAddress {
                street: "Kastanienallee 27, Hinterhaus 3. OG".into(),
                city: "Berlin".into(),
                region: "Berlin".into(),
                postal_code: "10435".into(),
                country: "DE".into(),
            }),
            updated_at: ago(30 * DAY),
        }),
        demographics: Some(Demographics {
            birth_date: "1988-07-14".into(),
            gender: Gender::Female.into(),
            language: "de-DE".into(),
            marital_status: MaritalStatus::Married.into(),
            ethnicity: "white-european".into(),
            religion: "none".into(),
        }),
        jurisdiction: "DE".into(),
        last_location: Some(GeoPoint {
            latitude: 52.538_47,
            longitude: 13.411_92,
        }),
        device_ids: vec![
            "ios-6F9619FF-8B86-D011-B42D-00C04FC964FF".into(),
            "web-3b1f0c2e9a7d4e58b6c1".into(),
        ],
        ip_address: "2a02:8108:1a40:3e00:5d2c:91ff:fe4a:7b10".into(),
        orders: vec![
            order(
                "ord-2026-118842",
                3,
                8_997,
                &["SKU-TEE-ORG-M-NAVY", "SKU-SOCK-3PK-39"],
                OrderStatus::Shipped,
            ),
            order(
                "ord-2026-104377",
                41,
                24_850,
                &["SKU-JKT-RAIN-M", "SKU-BAG-TOTE-OLV", "SKU-BTL-STEEL-750"],
                OrderStatus::Delivered,
            ),
            order(
                "ord-2026-087120",
                97,
                4_590,
                &["SKU-MUG-CER-WHT", "SKU-TEA-EARLGREY-100G"],
                OrderStatus::Returned,
            ),
        ],
        marketing_opt_in: HashMap::from([
            ("email".to_owned(), true),
            ("sms".to_owned(), false),
            ("push".to_owned(), true),
        ]),
        preferences: Some(Preferences {
            favourite_category: "outdoor-apparel".into(),
            declared_interests: vec!["hiking".into(), "sustainable-fashion".into()],
            newsletter: true,
            theme: "dark".into(),
        }),
        payment_method: Some(PaymentMethod::CardLast4("4242".into())),
        inferences: Some(Inferences {
            pregnancy_likelihood: 0.07,
            interests: vec![
                "outdoor".into(),
                "home-and-kitchen".into(),
                "eco-products".into(),
            ],
            life_events: vec![
                LifeEvent {
                    kind: "moved_house".into(),
                    detected_at: ago(60 * DAY),
                },
                LifeEvent {
                    kind: "new_job".into(),
                    detected_at: ago(120 * DAY),
                },
            ],
            income_band: "50k-75k".into(),
            updated_at: ago(7 * DAY),
        }),
        loyalty_points: 1_840,
        loyalty_tier: LoyaltyTier::Silver.into(),
        lifetime_value_cents: 187_430,
        created_at: ago(3 * 365 * DAY),
        updated_at: ago(2 * DAY),
        national_id: "T22000129".into(),
        // A 48-byte thumbnail stand-in: real avatars are usually URLs or blobs elsewhere.
        avatar: (0u8..48).map(|i| i.wrapping_mul(37) ^ 0x5a).collect(),
        search_terms: vec![
            "rain jacket women".into(),
            "reusable water bottle".into(),
            "merino socks".into(),
        ],
        household_segment: "urban-young-family-B2".into(),
    }
}
