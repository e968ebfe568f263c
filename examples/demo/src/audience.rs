//! A simulated audience for the collector's usage pages: a few dozen users of a small shop,
//! visiting over the last days in several sessions, whose browsers send page views, custom
//! events and a custom metric as the Application Insights JavaScript SDK does (the envelopes
//! of `tests/data/captures/browser-applicationinsights-web-3.4.4.ndjson`, with the device's
//! browser and OS as a telemetry initializer adds them), posted to `/v2/track` one batch per
//! user.
//!
//! Everything is drawn from a seeded generator: the same visits, relative to the same
//! anchor, every run.

use std::fmt::Write as _;

/// How many users visit.
pub const USERS: usize = 36;
/// Over how many days (the anchor's day and the days before it).
pub const DAYS: i64 = 6;

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// One page view or custom event of the audience.
#[derive(Clone, Debug, PartialEq)]
pub struct Visit {
    /// `ai.user.id`.
    pub user: String,
    /// `ai.session.id`.
    pub session: String,
    /// When, in ms since the epoch.
    pub ts_ms: i64,
    /// `pageView` or `customEvent`.
    pub kind: &'static str,
    /// The page's or event's name.
    pub name: &'static str,
    /// The user's browser, OS and plan.
    pub browser: &'static str,
    /// The user's OS.
    pub os: &'static str,
    /// The user's plan (a custom property).
    pub plan: &'static str,
    /// Items in the cart, for `add to cart` (sent as the `cart items` metric too).
    pub cart: Option<u32>,
}

/// A small, seeded generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `p` percent.
    fn chance(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    /// An id as the SDK makes them: 22 characters of its base64 alphabet.
    fn id(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        (0..22)
            .map(|_| ALPHABET[self.below(64) as usize] as char)
            .collect()
    }
}

const BROWSERS: [&str; 4] = ["Chrome 131", "Firefox 133", "Edge 131", "Safari 18"];
const SYSTEMS: [&str; 4] = ["Windows 11", "macOS 15", "Android 15", "iOS 18"];

/// The visits of the audience, by time, all before `anchor_ms` and within [`DAYS`] days of
/// it.
pub fn visits(anchor_ms: i64) -> Vec<Visit> {
    let mut rng = Rng(0x7ace_11c0_de5e_ed01);
    let mut out = Vec::new();
    for _ in 0..USERS {
        let user = rng.id();
        let browser = BROWSERS[rng.below(4) as usize];
        let os = SYSTEMS[rng.below(4) as usize];
        let plan = if rng.chance(30) { "pro" } else { "free" };
        // First visit 5 days ago or later; then back on later days, now and then.
        let first = rng.below(DAYS as u64) as i64;
        let mut days_ago = DAYS - 1 - first;
        let mut first_visit = true;
        while days_ago >= 0 {
            if first_visit || rng.chance(45) {
                let sessions = 1 + u64::from(rng.chance(25));
                for s in 0..sessions {
                    // Sessions between 1 and 13 hours before the anchor's time of day.
                    let start = anchor_ms
                        - days_ago * DAY_MS
                        - (1 + 6 * s as i64) * HOUR_MS
                        - rng.below(5 * HOUR_MS as u64) as i64;
                    session(&mut rng, &mut out, &user, start, (browser, os, plan));
                }
            }
            first_visit = false;
            days_ago -= 1;
        }
    }
    out.sort_by(|a, b| (a.ts_ms, &a.session).cmp(&(b.ts_ms, &b.session)));
    out
}

/// One session: the home page, then further along the shop as far as the user goes.
fn session(
    rng: &mut Rng,
    out: &mut Vec<Visit>,
    user: &str,
    start: i64,
    (browser, os, plan): (&'static str, &'static str, &'static str),
) {
    let session = rng.id();
    let mut t = start;
    let mut add = |rng: &mut Rng, kind: &'static str, name: &'static str, cart: Option<u32>| {
        out.push(Visit {
            user: user.to_owned(),
            session: session.clone(),
            ts_ms: t,
            kind,
            name,
            browser,
            os,
            plan,
            cart,
        });
        t += 5_000 + rng.below(85_000) as i64;
    };
    add(rng, "pageView", "Home", None);
    if !rng.chance(80) {
        return;
    }
    if rng.chance(40) {
        add(rng, "customEvent", "search", None);
    }
    add(rng, "pageView", "Products", None);
    if !rng.chance(65) {
        return;
    }
    let cart = 1 + rng.below(4) as u32;
    add(rng, "customEvent", "add to cart", Some(cart));
    add(rng, "pageView", "Cart", None);
    if !rng.chance(60) {
        return;
    }
    add(rng, "customEvent", "checkout started", None);
    add(rng, "pageView", "Checkout", None);
    if rng.chance(75) {
        add(rng, "customEvent", "order placed", None);
    }
}

fn hex32(rng: &mut Rng) -> String {
    format!("{:016x}{:016x}", rng.next(), rng.next())
}

fn json(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn time(ms: i64) -> String {
    tracelink::core::wire_time::format_time(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
    )
}

/// The envelopes the browser SDK sends for `v`: its page view or event, and the `cart
/// items` metric with `add to cart`.
fn envelopes(v: &Visit, rng: &mut Rng, out: &mut Vec<String>) {
    let op = hex32(rng);
    let page = match v.name {
        "Home" => "/",
        "Products" | "search" | "add to cart" => "/products",
        "Cart" => "/cart",
        _ => "/checkout",
    };
    let tags = format!(
        "{{\"ai.user.id\":{},\"ai.session.id\":{},\"ai.device.id\":\"browser\",\"ai.device.type\":\"Browser\",\
         \"ai.device.browser\":{},\"ai.device.os\":{},\"ai.operation.name\":{},\"ai.operation.id\":\"{op}\",\
         \"ai.application.ver\":\"1.2.3\",\"ai.internal.sdkVersion\":\"javascript:3.4.4\"}}",
        json(&v.user),
        json(&v.session),
        json(v.browser),
        json(v.os),
        json(page)
    );
    let head = |kind: &str| {
        format!(
            "{{\"time\":\"{}\",\"iKey\":\"00000000-0000-0000-0000-000000000000\",\
             \"name\":\"Microsoft.ApplicationInsights.00000000000000000000000000000000.{kind}\",\"tags\":{tags},",
            time(v.ts_ms)
        )
    };
    let mut e = head(if v.kind == "pageView" {
        "Pageview"
    } else {
        "Event"
    });
    if v.kind == "pageView" {
        let _ = write!(
            e,
            "\"data\":{{\"baseType\":\"PageviewData\",\"baseData\":{{\"ver\":2,\"name\":{},\"url\":\"http://shop.example{page}\",\
             \"duration\":\"00:00:00.{:03}\",\"properties\":{{\"refUri\":\"\",\"plan\":{}}},\"measurements\":{{}},\"id\":\"{op}\"}}}}}}",
            json(v.name),
            100 + rng.below(800),
            json(v.plan)
        );
    } else {
        let _ = write!(
            e,
            "\"data\":{{\"baseType\":\"EventData\",\"baseData\":{{\"ver\":2,\"name\":{},\"properties\":{{\"plan\":{}}},\"measurements\":{{}}}}}}}}",
            json(v.name),
            json(v.plan)
        );
    }
    out.push(e);
    if let Some(n) = v.cart {
        let mut m = head("Metric");
        let _ = write!(
            m,
            "\"data\":{{\"baseType\":\"MetricData\",\"baseData\":{{\"ver\":2,\"metrics\":[{{\"name\":\"cart items\",\"kind\":0,\"value\":{n}}}],\
             \"properties\":{{\"plan\":{}}}}}}}}}",
            json(v.plan)
        );
        out.push(m);
    }
}

/// Posts the audience's visits to the collector at `url` as browsers do (a JSON array per
/// user to `/v2/track`) and returns them.
pub async fn post(url: &str, anchor_ms: i64) -> Result<Vec<Visit>, crate::Error> {
    let visits = visits(anchor_ms);
    let mut rng = Rng(0x0b5e_55ed_5eed_0002);
    let mut by_user: Vec<(&str, Vec<String>)> = Vec::new();
    for v in &visits {
        let batch = match by_user.iter_mut().find(|(u, _)| *u == v.user) {
            Some((_, b)) => b,
            None => {
                by_user.push((&v.user, Vec::new()));
                &mut by_user.last_mut().ok_or("no batch")?.1
            }
        };
        envelopes(v, &mut rng, batch);
    }
    let client = reqwest::Client::new();
    for (_, batch) in by_user {
        let res = client
            .post(format!("{url}/v2/track"))
            .header("content-type", "application/json")
            .body(format!("[{}]", batch.join(",")))
            .send()
            .await?;
        if !res.status().is_success() {
            return Err(format!("the collector answered {}", res.status()).into());
        }
    }
    Ok(visits)
}
