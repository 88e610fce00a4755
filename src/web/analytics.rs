//! Analytics: the overview, the funnel, the forecast and this month's leaderboard, as charts
//! drawn on the server (SVG), so they read without JavaScript and print as they look.

use std::sync::Arc;

use maud::{html, Markup};
use poem::http::StatusCode;
use poem::web::Data;
use poem::Response;

use super::shell::{self, money, Section};
use super::{failure, html, Viewer};
use crate::domain::analytics::{
    self, Calendar, ForecastMonth, FunnelStep, Metric, Overview, Performance, Period, Window,
};
use crate::state::AppState;

/// Everything the page shows, from one snapshot.
struct Figures {
    overview: Overview,
    funnel: Vec<FunnelStep>,
    forecast: Vec<ForecastMonth>,
    leaders: Vec<Performance>,
}

/// `GET /analytics`.
#[poem::handler]
pub async fn page(viewer: Viewer, state: Data<&Arc<AppState>>) -> Response {
    let org = viewer.principal.org_id.clone();
    let now = state.clock.now_ms();
    // Whole-organization sums: the bulk readers, as the API's analytics use.
    let read = state
        .db
        .scan(move |c| {
            let month = Calendar::of(c, &org)?.period(Period::Month, now);
            Ok(Figures {
                overview: analytics::overview(c, &org, Window::ALL, now)?,
                funnel: analytics::funnel(c, &org, None, Window::ALL)?,
                forecast: analytics::forecast(c, &org)?,
                leaders: analytics::leaderboard(c, &org, month, Metric::RevenueClosed)?,
            })
        })
        .await;
    match read {
        Ok(f) => html(
            StatusCode::OK,
            shell::page(&viewer, Section::Analytics, "Analytics", charts(&f)),
        ),
        Err(e) => failure(&e),
    }
}

fn percent(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{:.0}%", v * 100.0))
}

fn charts(f: &Figures) -> Markup {
    let o = &f.overview;
    let cur = o.currency.to_string();
    let stages: Vec<Bar> = o
        .by_stage
        .iter()
        .map(|s| Bar {
            label: s.name.clone(),
            value: s.value,
            text: format!("{} · {} deals", money(s.value, &cur), s.count),
        })
        .collect();
    let funnel: Vec<Bar> = f
        .funnel
        .iter()
        .map(|s| Bar {
            label: s.name.clone(),
            value: s.entered as f64,
            text: match s.conversion_to_next.0 {
                Some(c) => format!("{} entered · {} on", s.entered, percent(Some(c))),
                None => format!("{} entered", s.entered),
            },
        })
        .collect();
    let forecast: Vec<Bar> = f
        .forecast
        .iter()
        .map(|m| Bar {
            label: m.month.clone(),
            value: m.weighted_value,
            text: format!(
                "{} weighted of {}",
                money(m.weighted_value, &cur),
                money(m.value, &cur)
            ),
        })
        .collect();
    let leaders: Vec<Bar> = f
        .leaders
        .iter()
        .map(|p| Bar {
            label: p.name.clone(),
            value: p.revenue_closed,
            text: format!("{} · {} won", money(p.revenue_closed, &cur), p.deals_won),
        })
        .collect();
    html! {
        h1 { "Analytics" }
        ul.summary aria-label="Key figures" {
            li { "Open deals " strong { (o.open_deals) } }
            li { "Pipeline " strong { (money(o.pipeline_value, &cur)) } }
            li { "Weighted " strong { (money(o.weighted_pipeline_value, &cur)) } }
            li { "Won " strong { (money(o.won_value, &cur)) } }
            li { "Win rate " strong { (percent(o.win_rate.0)) } }
            li { "Average deal " strong { (o.average_deal_size.0.map_or("—".into(), |v| money(v, &cur))) } }
            li { "Sales cycle " strong { (o.average_sales_cycle_days.0.map_or("—".into(), |d| format!("{d:.0} days"))) } }
            li { "At risk " strong { (o.at_risk_deals) } }
        }
        div.grid {
            (chart("c-stages", "Open pipeline by stage", &stages))
            (chart("c-funnel", "Funnel: deals that entered each stage, and how many went on", &funnel))
            (chart("c-forecast", "Forecast by expected close month (weighted by stage)", &forecast))
            (chart("c-leaders", "Leaderboard this month: revenue closed", &leaders))
        }
    }
}

/// One bar of a chart.
struct Bar {
    label: String,
    value: f64,
    text: String,
}

const ROW: f64 = 38.0;
const WIDTH: f64 = 400.0;

/// A bar chart as SVG, a bar a row under its label and figure, with its title and every figure
/// as text (a screen reader reads the labels and values; nothing depends on color). Drawn
/// 400 units wide, about the width of a panel, so its text is the page's size.
fn chart(id: &str, title: &str, bars: &[Bar]) -> Markup {
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max);
    let height = ROW * bars.len().max(1) as f64 + 4.0;
    html! {
        section.panel.chart aria-labelledby={"h-" (id)} {
            h2 #{"h-" (id)} { (title) }
            @if bars.is_empty() {
                p.empty { "Nothing to show yet." }
            } @else {
                svg xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (WIDTH) " " (height)} role="img" aria-labelledby={"h-" (id)} {
                    @for (i, b) in bars.iter().enumerate() {
                        @let y = ROW * i as f64;
                        @let w = if max > 0.0 { (b.value / max * WIDTH).max(1.0) } else { 1.0 };
                        g {
                            text.label x="0" y=(y + 14.0) { (b.label) }
                            text.value x=(WIDTH) y=(y + 14.0) text-anchor="end" { (b.text) }
                            rect.bar x="0" y=(y + 19.0) width=(format!("{w:.1}")) height="12" rx="3" {}
                        }
                    }
                }
            }
        }
    }
}
