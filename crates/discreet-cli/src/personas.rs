//! Built-in records for golden policy tests: reference profiles with the traits the
//! policy's guards look at (age, jurisdiction, freshness, special categories).
use discreet_proto::profile::v1::{
    Contact, Demographics, GeoPoint, Inferences, Order, PersonName, PostalAddress, Preferences,
    Profile, profile::PaymentMethod,
};
use prost::Message;
use prost_types::Timestamp;

/// 2026-11-18T11:06:40Z: the personas' data is fresh relative to this instant.
const REFERENCE_NOW: i64 = 1_795_000_000;
const DAY: i64 = 86_400;

/// The names `record: { persona: ... }` accepts.
pub(crate) const PERSONAS: [&str; 6] = [
    "adult_de",
    "minor_de",
    "adult_us_ca",
    "stale_inferences",
    "pregnancy_inferred",
    "declared_ethnicity",
];

/// The persona's profile, encoded; `None` for an unknown name.
pub(crate) fn encoded(name: &str) -> Option<Vec<u8>> {
    let profile = match name {
        "adult_de" => adult("1980-01-01", "DE"),
        "minor_de" => adult("2012-03-01", "DE"),
        "adult_us_ca" => adult("1980-01-01", "US-CA"),
        "stale_inferences" => {
            let mut p = adult("1980-01-01", "DE");
            if let Some(inf) = p.inferences.as_mut() {
                inf.updated_at = Some(at(REFERENCE_NOW - 400 * DAY));
            }
            p
        }
        "pregnancy_inferred" => {
            let mut p = adult("1985-06-15", "US");
            if let Some(inf) = p.inferences.as_mut() {
                inf.pregnancy_likelihood = 0.93;
            }
            p
        }
        "declared_ethnicity" => {
            let mut p = adult("1980-01-01", "DE");
            if let Some(d) = p.demographics.as_mut() {
                d.ethnicity = "declared-ethnicity".into();
            }
            p
        }
        _ => return None,
    };
    Some(profile.encode_to_vec())
}

fn at(seconds: i64) -> Timestamp {
    Timestamp { seconds, nanos: 0 }
}

/// Where a persona of `jurisdiction` lives: its phone, address, language, location and
/// currency agree with it (the policy decides by the jurisdiction field alone; the rest
/// only has to be believable when a case's output is read).
struct Home {
    phone: &'static str,
    street: &'static str,
    city: &'static str,
    region: &'static str,
    postal_code: &'static str,
    country: &'static str,
    language: &'static str,
    at: (f64, f64),
    currency: &'static str,
}

fn home(jurisdiction: &str) -> Home {
    match jurisdiction {
        "US-CA" => Home {
            phone: "+1 415 555 0142",
            street: "1 Market St",
            city: "San Francisco",
            region: "CA",
            postal_code: "94105",
            country: "US",
            language: "en",
            at: (37.794_1, -122.395_1),
            currency: "USD",
        },
        "US" => Home {
            phone: "+1 212 555 0187",
            street: "350 5th Ave",
            city: "New York",
            region: "NY",
            postal_code: "10118",
            country: "US",
            language: "en",
            at: (40.748_4, -73.985_7),
            currency: "USD",
        },
        _ => Home {
            phone: "+49 30 1234567",
            street: "Unter den Linden 1",
            city: "Berlin",
            region: "BE",
            postal_code: "10117",
            country: "DE",
            language: "de",
            at: (52.520_008, 13.404_954),
            currency: "EUR",
        },
    }
}

/// A profile with one value in most fields, so every rule of the policy meets a value.
fn adult(birth_date: &str, jurisdiction: &str) -> Profile {
    let home = home(jurisdiction);
    Profile {
        subject_id: "u-000042".into(),
        username: "ada".into(),
        name: Some(PersonName {
            first: "Ada".into(),
            last: "Lovelace".into(),
            preferred: "Ada".into(),
        }),
        contact: Some(Contact {
            email: "ada@example.org".into(),
            phone: home.phone.into(),
            address: Some(PostalAddress {
                street: home.street.into(),
                city: home.city.into(),
                region: home.region.into(),
                postal_code: home.postal_code.into(),
                country: home.country.into(),
            }),
            updated_at: None,
        }),
        demographics: Some(Demographics {
            birth_date: birth_date.into(),
            gender: 1,
            language: home.language.into(),
            ..Demographics::default()
        }),
        jurisdiction: jurisdiction.into(),
        last_location: Some(GeoPoint {
            latitude: home.at.0,
            longitude: home.at.1,
        }),
        ip_address: "203.0.113.7".into(),
        orders: vec![Order {
            order_id: "o-1".into(),
            total_cents: 4_999,
            currency: home.currency.into(),
            ..Order::default()
        }],
        marketing_opt_in: [("email".to_owned(), true)].into(),
        preferences: Some(Preferences {
            favourite_category: "books".into(),
            newsletter: true,
            ..Preferences::default()
        }),
        payment_method: Some(PaymentMethod::CardLast4("4242".into())),
        inferences: Some(Inferences {
            interests: vec!["strollers".into()],
            income_band: "50-75k".into(),
            updated_at: Some(at(REFERENCE_NOW - 10 * DAY)),
            ..Inferences::default()
        }),
        loyalty_points: 120,
        lifetime_value_cents: 123_456,
        updated_at: Some(at(REFERENCE_NOW - DAY)),
        national_id: "X1234567".into(),
        household_segment: "urban-family".into(),
        ..Profile::default()
    }
}
