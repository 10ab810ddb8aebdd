//! The dates `touch` reads: `-d @EPOCH[.frac]`, `-d YYYY-MM-DD[ HH:MM[:SS[.frac]]]`
//! (or with `T`, or a trailing `Z`/` UTC`), and `-t [[CC]YY]MMDDhhmm[.ss]`.
//! Local times go through the C library's `mktime`, as GNU's do. Other
//! `-d` forms ("yesterday", "next Friday") are GNU's parser's alone: the
//! caller hands them to the real touch.

/// Nanoseconds since the epoch.
pub type Ns = i64;

const NS: i64 = 1_000_000_000;

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

/// `.123` → nanoseconds (at most 9 digits kept).
fn fraction(s: &str) -> Option<i64> {
    if !digits(s) {
        return None;
    }
    let mut ns = 0i64;
    for (i, c) in s.bytes().take(9).enumerate() {
        ns += (c - b'0') as i64 * 10i64.pow(8 - i as u32);
    }
    Some(ns)
}

struct Civil {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    min: i64,
    sec: i64,
}

impl Civil {
    fn valid(&self) -> bool {
        let leap = (self.year % 4 == 0 && self.year % 100 != 0) || self.year % 400 == 0;
        let days = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days[(self.month - 1) as usize]
            && (0..24).contains(&self.hour)
            && (0..60).contains(&self.min)
            && (0..=60).contains(&self.sec)
    }

    /// Seconds since the epoch, as UTC.
    fn utc(&self) -> i64 {
        // Days from civil (Howard Hinnant's algorithm).
        let y = if self.month <= 2 {
            self.year - 1
        } else {
            self.year
        };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (self.month + 9) % 12;
        let doy = (153 * mp + 2) / 5 + self.day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 86_400 + self.hour * 3600 + self.min * 60 + self.sec
    }

    /// Seconds since the epoch, as local time (`mktime`, DST guessed).
    fn local(&self) -> Option<i64> {
        // SAFETY: all-zero is a valid `tm`.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        tm.tm_year = (self.year - 1900) as libc::c_int;
        tm.tm_mon = (self.month - 1) as libc::c_int;
        tm.tm_mday = self.day as libc::c_int;
        tm.tm_hour = self.hour as libc::c_int;
        tm.tm_min = self.min as libc::c_int;
        tm.tm_sec = self.sec as libc::c_int;
        tm.tm_isdst = -1;
        // SAFETY: a valid `tm`; mktime reads the TZ environment.
        let t = unsafe { libc::mktime(&mut tm) };
        (t != -1 || (self.year == 1969 && self.month == 12 && self.day == 31)).then_some(t)
    }
}

/// What a `-d` string is to the applet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateForm {
    At(Ns),
    /// One of the forms above, but no such time (`2001-02-30`).
    Invalid,
    /// Not one of the forms above: GNU's parser decides.
    Unknown,
}

/// Parses a `-d` date.
pub fn parse_date(s: &str) -> DateForm {
    match parse_date_inner(s.trim()) {
        Some(Some(ns)) => DateForm::At(ns),
        Some(None) => DateForm::Invalid,
        None => DateForm::Unknown,
    }
}

/// `None`: not our syntax; `Some(None)`: our syntax, no such time.
fn parse_date_inner(s: &str) -> Option<Option<Ns>> {
    if let Some(epoch) = s.strip_prefix('@') {
        let (neg, body) = match epoch.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, epoch.strip_prefix('+').unwrap_or(epoch)),
        };
        let (int, frac) = match body.split_once(['.', ',']) {
            Some((i, f)) => (i, fraction(f)?),
            None => (body, 0),
        };
        if !digits(int) {
            return None;
        }
        let secs: i64 = int.parse().ok()?;
        let total = secs.checked_mul(NS).and_then(|t| t.checked_add(frac));
        return Some(total.map(|t| if neg { -t } else { t }));
    }
    let (s, utc) = if let Some(rest) = s.strip_suffix('Z') {
        (rest, true)
    } else if let Some(rest) = s.strip_suffix(" UTC") {
        (rest.trim_end(), true)
    } else {
        (s, false)
    };
    let (date, time) = match s.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t.trim_start())),
        None => (s, None),
    };
    let mut d = date.split('-');
    let (y, mo, da) = (d.next()?, d.next()?, d.next()?);
    if d.next().is_some() || !digits(y) || y.len() < 4 || !digits(mo) || !digits(da) {
        return None;
    }
    if mo.len() > 2 || da.len() > 2 {
        return None;
    }
    let mut c = Civil {
        year: y.parse().ok()?,
        month: mo.parse().ok()?,
        day: da.parse().ok()?,
        hour: 0,
        min: 0,
        sec: 0,
    };
    let mut frac = 0;
    if let Some(t) = time {
        let (hms, f) = match t.split_once(['.', ',']) {
            Some((a, b)) => (a, fraction(b)?),
            None => (t, 0),
        };
        frac = f;
        let parts: Vec<&str> = hms.split(':').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| !digits(p) || p.len() > 2) {
            return None;
        }
        if parts.len() == 2 && frac != 0 {
            return None;
        }
        c.hour = parts[0].parse().ok()?;
        c.min = parts[1].parse().ok()?;
        c.sec = parts.get(2).map_or(Some(0), |p| p.parse().ok())?;
    }
    if !c.valid() {
        return Some(None);
    }
    let secs = if utc { Some(c.utc()) } else { c.local() };
    Some(secs.and_then(|s| s.checked_mul(NS)?.checked_add(frac)))
}

/// Parses a `-t` stamp `[[CC]YY]MMDDhhmm[.ss]`; `None` if invalid (touch
/// then says "invalid date format").
pub fn parse_stamp(s: &str, current_year: i64) -> Option<Ns> {
    let (main, sec) = match s.split_once('.') {
        Some((m, ss)) if ss.len() == 2 && digits(ss) => (m, ss.parse::<i64>().ok()?),
        Some(_) => return None,
        None => (s, 0),
    };
    if !digits(main) {
        return None;
    }
    let n = |a: usize| main[a..a + 2].parse::<i64>().ok();
    let (year, rest) = match main.len() {
        8 => (current_year, 0),
        10 => {
            let yy = n(0)?;
            (if yy < 69 { 2000 + yy } else { 1900 + yy }, 2)
        }
        12 => (n(0)? * 100 + n(2)?, 4),
        _ => return None,
    };
    let c = Civil {
        year,
        month: n(rest)?,
        day: n(rest + 2)?,
        hour: n(rest + 4)?,
        min: n(rest + 6)?,
        sec,
    };
    if !c.valid() {
        return None;
    }
    c.local()?.checked_mul(NS)
}

/// The current year in local time.
pub fn current_year() -> i64 {
    // SAFETY: time and localtime_r with valid pointers.
    unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        tm.tm_year as i64 + 1900
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_stamps() {
        assert_eq!(parse_date("@1000000000"), DateForm::At(1_000_000_000 * NS));
        assert_eq!(parse_date("@1.5"), DateForm::At(NS + NS / 2));
        assert_eq!(parse_date("@-2"), DateForm::At(-2 * NS));
        assert_eq!(
            parse_date("2001-09-09 01:46:40Z"),
            DateForm::At(1_000_000_000 * NS)
        );
        assert_eq!(
            parse_date("2001-09-09T01:46:40.25Z"),
            DateForm::At(1_000_000_000 * NS + NS / 4)
        );
        assert_eq!(parse_date("1970-01-02 UTC"), DateForm::At(86_400 * NS));
        assert_eq!(parse_date("2020-02-30"), DateForm::Invalid);
        assert_eq!(parse_date("yesterday"), DateForm::Unknown);
        assert_eq!(parse_date("2020-1-2 3"), DateForm::Unknown);
        assert!(parse_stamp("13011200", 2024).is_none());
        assert!(parse_stamp("2401011200.5", 2024).is_none());
        assert!(parse_stamp("200101011200.61", 2024).is_none());
        // Local-time forms agree with each other.
        assert_eq!(
            parse_stamp("200109090146.40", 2024).map(DateForm::At),
            Some(parse_date("2001-09-09 01:46:40"))
        );
        assert_eq!(
            parse_stamp("0109090146.40", 2024),
            parse_stamp("200109090146.40", 1)
        );
    }
}
