//! Deterministic profiles: the same count gives the same records on every machine, so
//! tests and benchmarks can name subjects and expect fields.
use std::collections::BTreeMap;

use discreet_proto::profile::v1::{
    Contact, Demographics, Gender, GeoPoint, Inferences, LifeEvent, LoyaltyTier, MaritalStatus,
    Order, OrderStatus, PersonName, PostalAddress, Preferences, Profile, profile::PaymentMethod,
};
use prost_types::Timestamp;

/// The instant the data set is fresh at: 2026-11-18T19:06:40Z. Records are dated relative
/// to it, so a test with a fixed clock sees the same ages and freshness every time.
pub const REFERENCE_NOW: i64 = 1_795_000_000;
const DAY: i64 = 86_400;

/// A named record that exercises one rule of the shipped policy.
#[derive(Debug, Clone, Copy)]
pub struct Persona {
    /// Its subject id in the store.
    pub subject_id: &'static str,
    /// What it is for.
    pub about: &'static str,
}

/// The personas, first in every data set.
pub const PERSONAS: [Persona; 6] = [
    Persona {
        subject_id: "persona-minor",
        about: "15 years old, Germany: refused for marketing",
    },
    Persona {
        subject_id: "persona-stale",
        about: "inferences last confirmed 400 days ago: withheld where freshness is limited",
    },
    Persona {
        subject_id: "persona-pregnancy",
        about: "a model inferred a pregnancy: never released for marketing",
    },
    Persona {
        subject_id: "persona-ethnicity",
        about: "declared ethnicity: special category, released only with explicit consent",
    },
    Persona {
        subject_id: "persona-eu",
        about: "adult resident of France (EU)",
    },
    Persona {
        subject_id: "persona-california",
        about: "adult resident of California (US-CA)",
    },
];

/// Profiles by subject id.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub profiles: BTreeMap<String, Profile>,
}

impl Dataset {
    /// As [`Dataset::generate`], with every instant and birth date moved by `now -
    /// REFERENCE_NOW`: at `now` the records are exactly as fresh and the personas exactly as
    /// old as at [`REFERENCE_NOW`], whenever the demo runs.
    #[must_use]
    pub fn generate_at(count: usize, now: i64) -> Dataset {
        let mut data = Dataset::generate(count);
        let offset = now - REFERENCE_NOW;
        if offset != 0 {
            for p in data.profiles.values_mut() {
                shift(p, offset);
            }
        }
        data
    }

    /// The personas plus `count` synthetic profiles `u-000001`, `u-000002`, ...
    #[must_use]
    pub fn generate(count: usize) -> Dataset {
        let mut profiles = BTreeMap::new();
        for p in personas() {
            profiles.insert(p.subject_id.clone(), p);
        }
        for i in 1..=count {
            let p = synthetic(i as u64);
            profiles.insert(p.subject_id.clone(), p);
        }
        Dataset { profiles }
    }
}

impl Dataset {
    /// Leak-hunt data (`tests/tests/leak_hunt.rs`): the six personas plus one record,
    /// `LEAK-subject_id-07`, with every string and bytes field (nested, repeated, map
    /// keys, the subject id itself, the oneof) replaced by a unique marker
    /// `LEAK-<field path>-<nn>`, `nn` the record's number (01 to 07).
    ///
    /// The personas keep the two fields whose values drive the policy's guards, so each
    /// still exercises its rule: `jurisdiction` (an ISO code) and
    /// `demographics.birth_date` (a date, made unique per persona with the same age).
    /// Record 07 has markers there too, so its age and jurisdiction are unknown.
    #[must_use]
    pub fn with_markers() -> Dataset {
        let mut profiles = BTreeMap::new();
        let mut records = personas();
        records.push(personas().swap_remove(4));
        for (i, mut p) in records.into_iter().enumerate() {
            let n = i + 1;
            let birth_date = match n {
                1 => "2011-05-21".to_owned(),
                7 => String::new(),
                n => format!("1984-09-1{n}"),
            };
            mark(&mut p, n, &birth_date);
            if n == 7 {
                p.jurisdiction = format!("LEAK-jurisdiction-{n:02}");
            }
            profiles.insert(p.subject_id.clone(), p);
        }
        Dataset { profiles }
    }
}

/// Puts a marker in every string and bytes field of `p` but the jurisdiction (see
/// [`Dataset::with_markers`]); `birth_date` empty means a marker there too.
fn mark(p: &mut Profile, n: usize, birth_date: &str) {
    let m = |field: &str| format!("LEAK-{field}-{n:02}");
    p.subject_id = m("subject_id");
    p.username = m("username");
    p.name = Some(PersonName {
        first: m("name.first"),
        last: m("name.last"),
        preferred: m("name.preferred"),
    });
    let contact = p.contact.get_or_insert_with(Contact::default);
    contact.email = m("contact.email");
    contact.phone = m("contact.phone");
    contact.address = Some(PostalAddress {
        street: m("contact.address.street"),
        city: m("contact.address.city"),
        region: m("contact.address.region"),
        postal_code: m("contact.address.postal_code"),
        country: m("contact.address.country"),
    });
    let d = p.demographics.get_or_insert_with(Demographics::default);
    d.birth_date = if birth_date.is_empty() {
        m("demographics.birth_date")
    } else {
        birth_date.to_owned()
    };
    d.language = m("demographics.language");
    d.ethnicity = m("demographics.ethnicity");
    d.religion = m("demographics.religion");
    p.device_ids = (0..2).map(|i| m(&format!("device_ids.{i}"))).collect();
    p.ip_address = m("ip_address");
    p.orders = (0..2)
        .map(|i| Order {
            order_id: m(&format!("orders.{i}.order_id")),
            placed_at: at(REFERENCE_NOW - (10 + i) * DAY),
            total_cents: 1_000 + i,
            currency: m(&format!("orders.{i}.currency")),
            skus: (0..2).map(|k| m(&format!("orders.{i}.skus.{k}"))).collect(),
            status: OrderStatus::Delivered as i32,
        })
        .collect();
    p.marketing_opt_in = (0..2)
        .map(|i| (m(&format!("marketing_opt_in.key{i}")), i == 0))
        .collect();
    p.preferences = Some(Preferences {
        favourite_category: m("preferences.favourite_category"),
        declared_interests: (0..2)
            .map(|i| m(&format!("preferences.declared_interests.{i}")))
            .collect(),
        newsletter: true,
        theme: m("preferences.theme"),
    });
    // Each variant of the oneof on some records.
    p.payment_method = Some(match n % 3 {
        0 => PaymentMethod::CardLast4(m("card_last4")),
        1 => PaymentMethod::Iban(m("iban")),
        _ => PaymentMethod::WalletId(m("wallet_id")),
    });
    let inf = p.inferences.get_or_insert_with(Inferences::default);
    inf.interests = (0..2)
        .map(|i| m(&format!("inferences.interests.{i}")))
        .collect();
    for (i, e) in inf.life_events.iter_mut().enumerate() {
        e.kind = m(&format!("inferences.life_events.{i}.kind"));
    }
    inf.income_band = m("inferences.income_band");
    p.national_id = m("national_id");
    p.avatar = m("avatar").into_bytes();
    p.search_terms = (0..2).map(|i| m(&format!("search_terms.{i}"))).collect();
    p.household_segment = m("household_segment");
}

/// A small deterministic generator (SplitMix64): no dependency, same output everywhere.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const FIRST: [&str; 12] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Linus", "Radia", "Tim",
    "Frances", "Dennis",
];
const LAST: [&str; 10] = [
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Hamilton", "Torvalds",
    "Perlman", "Allen",
];
const PLACES: [(&str, &str, &str, &str, f64, f64); 6] = [
    ("DE", "Berlin", "BE", "10115", 52.52, 13.40),
    ("FR", "Paris", "IDF", "75001", 48.86, 2.35),
    ("US-CA", "San Francisco", "CA", "94103", 37.77, -122.42),
    ("US", "Austin", "TX", "73301", 30.27, -97.74),
    ("NL", "Amsterdam", "NH", "1012", 52.37, 4.90),
    ("GB", "London", "LND", "EC1A", 51.51, -0.13),
];
const INTERESTS: [&str; 8] = [
    "hiking",
    "cooking",
    "strollers",
    "running",
    "jazz",
    "gardening",
    "board games",
    "cycling",
];
const EVENTS: [&str; 4] = ["new_baby", "moved_house", "new_job", "graduation"];

fn at(secs: i64) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: secs,
        nanos: 0,
    })
}

/// The `i`-th synthetic profile: an adult with a full record, fresh data.
/// The country calling code and an area code of a place in [`PLACES`].
fn dialling_prefix(jurisdiction: &str) -> &'static str {
    match jurisdiction {
        "FR" => "+33 1",
        "US-CA" => "+1 415",
        "US" => "+1 512",
        "NL" => "+31 20",
        "GB" => "+44 20",
        _ => "+49 30",
    }
}

fn synthetic(i: u64) -> Profile {
    let mut d = Draw(i);
    let (j, city, region, postal, lat, lon) = PLACES[(d.below(PLACES.len() as u64)) as usize];
    let first = d.pick(&FIRST);
    let last = d.pick(&LAST);
    let year = 1950 + d.below(55);
    let orders = (0..d.below(4))
        .map(|n| Order {
            order_id: format!("o-{i:06}-{n}"),
            placed_at: at(REFERENCE_NOW - (d.below(700) as i64) * DAY),
            total_cents: (d.below(50_000) + 500) as i64,
            currency: "EUR".into(),
            skus: (0..1 + d.below(3))
                .map(|k| format!("sku-{}", (i * 7 + k) % 997))
                .collect(),
            status: OrderStatus::Delivered as i32,
        })
        .collect();
    Profile {
        subject_id: format!("u-{i:06}"),
        username: format!("{}{}", first.to_lowercase(), i),
        name: Some(PersonName {
            first: first.into(),
            last: last.into(),
            preferred: first.into(),
        }),
        contact: Some(Contact {
            email: format!(
                "{}.{}{}@example.org",
                first.to_lowercase(),
                last.to_lowercase(),
                i
            ),
            phone: format!("{} {:07}", dialling_prefix(j), d.below(10_000_000)),
            address: Some(PostalAddress {
                street: format!("{} Example Street", 1 + d.below(200)),
                city: city.into(),
                region: region.into(),
                postal_code: postal.into(),
                country: j.split('-').next().unwrap_or(j).into(),
            }),
            updated_at: at(REFERENCE_NOW - (d.below(200) as i64) * DAY),
        }),
        demographics: Some(Demographics {
            birth_date: format!("{year:04}-{:02}-{:02}", 1 + d.below(12), 1 + d.below(28)),
            gender: Gender::Undisclosed as i32,
            language: match j {
                "FR" => "fr",
                "NL" => "nl",
                "DE" => "de",
                _ => "en",
            }
            .into(),
            marital_status: MaritalStatus::Single as i32,
            ethnicity: String::new(),
            religion: String::new(),
        }),
        jurisdiction: j.into(),
        last_location: Some(GeoPoint {
            latitude: lat + (d.below(1000) as f64) / 10_000.0,
            longitude: lon + (d.below(1000) as f64) / 10_000.0,
        }),
        device_ids: vec![format!("dev-{:012x}", d.next() & 0xffff_ffff_ffff)],
        ip_address: format!("203.0.113.{}", d.below(255)),
        orders,
        marketing_opt_in: [
            ("email".to_owned(), d.below(2) == 0),
            ("sms".to_owned(), false),
        ]
        .into_iter()
        .collect(),
        preferences: Some(Preferences {
            favourite_category: d.pick(&INTERESTS).into(),
            declared_interests: vec![d.pick(&INTERESTS).into()],
            newsletter: true,
            theme: "dark".into(),
        }),
        payment_method: Some(PaymentMethod::CardLast4(format!("{:04}", d.below(10_000)))),
        inferences: Some(Inferences {
            pregnancy_likelihood: 0.0,
            interests: vec![d.pick(&INTERESTS).into(), d.pick(&INTERESTS).into()],
            life_events: vec![LifeEvent {
                kind: d.pick(&EVENTS).into(),
                detected_at: at(REFERENCE_NOW - 30 * DAY),
            }],
            income_band: "50-75k".into(),
            updated_at: at(REFERENCE_NOW - (d.below(60) as i64) * DAY),
        }),
        loyalty_points: d.below(20_000) as u32,
        loyalty_tier: LoyaltyTier::Silver as i32,
        lifetime_value_cents: (d.below(2_000_000)) as i64,
        created_at: at(REFERENCE_NOW - 900 * DAY),
        updated_at: at(REFERENCE_NOW - (d.below(30) as i64) * DAY),
        national_id: format!("ID{:09}", d.below(1_000_000_000)),
        avatar: vec![0x89, b'P', b'N', b'G'],
        search_terms: vec![d.pick(&INTERESTS).into()],
        household_segment: "urban-families".into(),
    }
}

/// Moves a profile's instants and birth date by `offset` seconds.
fn shift(p: &mut Profile, offset: i64) {
    let move_ts = |t: &mut Option<Timestamp>| {
        if let Some(t) = t.as_mut() {
            t.seconds += offset;
        }
    };
    move_ts(&mut p.created_at);
    move_ts(&mut p.updated_at);
    if let Some(c) = p.contact.as_mut() {
        move_ts(&mut c.updated_at);
    }
    for o in &mut p.orders {
        move_ts(&mut o.placed_at);
    }
    if let Some(inf) = p.inferences.as_mut() {
        move_ts(&mut inf.updated_at);
        for e in &mut inf.life_events {
            move_ts(&mut e.detected_at);
        }
    }
    if let Some(d) = p.demographics.as_mut()
        && let Some(born) = discreet_redact::date::CivilDate::parse(&d.birth_date)
    {
        let moved = discreet_redact::date::CivilDate::from_unix(born.to_unix() + offset);
        d.birth_date = format!("{:04}-{:02}-{:02}", moved.year, moved.month, moved.day);
    }
}

fn personas() -> Vec<Profile> {
    let base = |id: &str, seed: u64| {
        let mut p = synthetic(10_000_000 + seed);
        p.subject_id = id.into();
        p
    };
    let mut minor = base("persona-minor", 1);
    minor.jurisdiction = "DE".into();
    if let Some(d) = minor.demographics.as_mut() {
        d.birth_date = "2011-05-20".into();
    }
    let mut stale = base("persona-stale", 2);
    stale.jurisdiction = "DE".into();
    if let Some(inf) = stale.inferences.as_mut() {
        inf.updated_at = at(REFERENCE_NOW - 400 * DAY);
        inf.life_events = vec![LifeEvent {
            kind: "new_baby".into(),
            detected_at: at(REFERENCE_NOW - 420 * DAY),
        }];
    }
    let mut pregnancy = base("persona-pregnancy", 3);
    pregnancy.jurisdiction = "US".into();
    if let Some(inf) = pregnancy.inferences.as_mut() {
        inf.pregnancy_likelihood = 0.93;
        inf.interests = vec!["maternity clothing".into(), "strollers".into()];
    }
    let mut ethnicity = base("persona-ethnicity", 4);
    if let Some(d) = ethnicity.demographics.as_mut() {
        d.ethnicity = "declared-ethnicity".into();
    }
    let mut eu = base("persona-eu", 5);
    live_in_france(&mut eu);
    let mut ca = base("persona-california", 6);
    ca.jurisdiction = "US-CA".into();
    for p in [&mut stale, &mut pregnancy, &mut ethnicity, &mut eu, &mut ca] {
        if let Some(d) = p.demographics.as_mut() {
            d.birth_date = "1984-09-03".into();
        }
    }
    vec![minor, stale, pregnancy, ethnicity, eu, ca]
}

/// Makes `p` a resident of France throughout: `base` draws a random place (persona-eu's
/// is Amsterdam, with a Dutch phone and language), which the demo would show beside
/// "adult resident of France".
fn live_in_france(p: &mut Profile) {
    p.jurisdiction = "FR".into();
    if let Some(c) = p.contact.as_mut() {
        c.phone = "+33 1 99 00 24 70".into();
        if let Some(a) = c.address.as_mut() {
            a.street = "12 Rue de l'Exemple".into();
            a.city = "Paris".into();
            a.region = "IDF".into();
            a.postal_code = "75001".into();
            a.country = "FR".into();
        }
    }
    if let Some(d) = p.demographics.as_mut() {
        d.language = "fr".into();
    }
    p.last_location = Some(GeoPoint {
        latitude: 48.8606,
        longitude: 2.3376,
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn shifted_data_is_as_old_at_the_new_instant() {
        use discreet_redact::date::CivilDate;
        let later = REFERENCE_NOW + 400 * DAY;
        let base = Dataset::generate(3);
        let moved = Dataset::generate_at(3, later);
        let age = |d: &Dataset, now: i64| {
            let p = &d.profiles["persona-minor"];
            let born = CivilDate::parse(&p.demographics.as_ref().unwrap().birth_date).unwrap();
            born.age_on(CivilDate::from_unix(now))
        };
        assert_eq!(age(&base, REFERENCE_NOW), age(&moved, later));
        let stale = |d: &Dataset| {
            d.profiles["persona-stale"]
                .inferences
                .as_ref()
                .unwrap()
                .updated_at
                .unwrap()
                .seconds
        };
        assert_eq!(stale(&moved) - stale(&base), 400 * DAY);
        assert_eq!(
            Dataset::generate_at(3, REFERENCE_NOW).profiles,
            base.profiles
        );
    }

    #[test]
    fn marked_records_hold_markers() {
        let d = Dataset::with_markers();
        assert_eq!(d.profiles.len(), 7);
        for (n, (id, p)) in d.profiles.iter().enumerate() {
            assert_eq!(id, &format!("LEAK-subject_id-{:02}", n + 1));
            assert_eq!(
                p.contact.as_ref().unwrap().email,
                format!("LEAK-contact.email-{:02}", n + 1)
            );
        }
        assert_eq!(
            d.profiles["LEAK-subject_id-01"]
                .demographics
                .as_ref()
                .unwrap()
                .birth_date,
            "2011-05-21"
        );
    }

    #[test]
    fn persona_eu_lives_in_france_throughout() {
        let d = Dataset::generate(0);
        let eu = &d.profiles["persona-eu"];
        assert_eq!(eu.jurisdiction, "FR");
        let contact = eu.contact.as_ref().unwrap();
        assert!(contact.phone.starts_with("+33 "), "{}", contact.phone);
        let address = contact.address.as_ref().unwrap();
        assert_eq!(
            (address.city.as_str(), address.country.as_str()),
            ("Paris", "FR")
        );
        assert_eq!(eu.demographics.as_ref().unwrap().language, "fr");
        let at = eu.last_location.unwrap();
        // Inside metropolitan France's bounding box.
        assert!((41.0..51.5).contains(&at.latitude), "{at:?}");
        assert!((-5.5..10.0).contains(&at.longitude), "{at:?}");
        // The others keep what `base` draws for them.
        assert_eq!(d.profiles["persona-california"].jurisdiction, "US-CA");
        assert_eq!(
            d.profiles["persona-ethnicity"].contact,
            synthetic(10_000_004).contact
        );
    }

    #[test]
    fn generation_is_deterministic_and_personas_come_first() {
        let a = Dataset::generate(50);
        let b = Dataset::generate(50);
        assert_eq!(a.profiles, b.profiles);
        assert_eq!(a.profiles.len(), 56);
        for persona in PERSONAS {
            assert!(
                a.profiles.contains_key(persona.subject_id),
                "{}",
                persona.subject_id
            );
        }
        let minor = &a.profiles["persona-minor"];
        assert_eq!(
            minor.demographics.as_ref().map(|d| d.birth_date.as_str()),
            Some("2011-05-20")
        );
    }
}
