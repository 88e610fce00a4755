use super::*;

#[test]
fn currencies_are_sorted_for_binary_search() {
    assert!(CURRENCIES.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(currency_exponent("JPY"), Some(0));
    assert_eq!(currency_exponent("KWD"), Some(3));
    assert_eq!(currency_exponent("XXX"), None);
}

#[test]
fn money_is_whole_minor_units_rounded() {
    let mut issues = Issues::new();
    assert_eq!(money_to_minor(&mut issues, "v", 12500.5, "USD"), 1_250_050);
    assert_eq!(money_to_minor(&mut issues, "v", 0.29, "USD"), 29);
    assert_eq!(money_to_minor(&mut issues, "v", 12.345, "USD"), 1235);
    assert_eq!(money_to_minor(&mut issues, "v", 1.5, "JPY"), 2);
    assert_eq!(money_to_minor(&mut issues, "v", 1.2345, "BHD"), 1235);
    assert!(issues.finish().is_ok());
    let mut issues = Issues::new();
    money_to_minor(&mut issues, "w", -1.0, "USD");
    assert!(issues.finish().is_err());
    assert_eq!(minor_to_money(1_250_050, "USD"), 12500.5);
}

#[test]
fn emails() {
    assert!(is_email("ada@example.com"));
    assert!(is_email("a.b+tag@sub.example.co.uk"));
    assert!(!is_email("ada@localhost"));
    assert!(!is_email("ada.example.com"));
    assert!(!is_email("@example.com"));
    assert!(!is_email("ada@-x.com"));
    assert!(!is_email("a..b@example.com"));
}

#[test]
fn time_zones() {
    let ok = |name: &str| {
        let mut issues = Issues::new();
        let canonical = time_zone(&mut issues, "timezone", name);
        issues.finish().ok().map(|()| canonical)
    };
    for name in [
        "UTC",
        "Europe/Berlin",
        "America/Argentina/Buenos_Aires",
        "Etc/GMT+5",
    ] {
        assert_eq!(ok(name).as_deref(), Some(name));
    }
    for name in [
        "berlin",
        "Europe/",
        "Mars/Olympus",
        "Europe/Atlantis",
        "UTC+2",
    ] {
        assert_eq!(ok(name), None, "{name}");
    }
}
