//! Pages for the people who sell and advertise: `/advertise` creates sponsored-product campaigns and shows their
//! figures, `/sell` writes a listing from notes and scores it. They change the store, so they are served only
//! while auth is off (a local or demo store); with a master key set, the admin API does the same with the key.

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use commerce::ads::{CampaignDraft, TargetDraft};
use commerce::{CommerceError, Storefront};
use maud::{Markup, html};
use serde::Deserialize;

use crate::error_page;
use crate::pages::{Chrome, layout};

/// The advertiser and seller pages.
pub fn business_router(storefront: Storefront) -> Router {
    Router::new()
        .route("/advertise", get(advertise_page).post(create_campaign))
        .route("/sell", get(sell_page).post(write_listing))
        .with_state(storefront)
}

fn chrome(title: &str) -> Chrome<'_> {
    Chrome {
        title,
        header_search: Some(""),
        auto_refresh: false,
    }
}

async fn advertise_page(State(storefront): State<Storefront>) -> Response {
    advertise(&storefront, None, StatusCode::OK).await
}

async fn advertise(storefront: &Storefront, problem: Option<&str>, status: StatusCode) -> Response {
    let Some(ads) = storefront.ads() else {
        return error_page(&CommerceError::NotFound("this store runs no ads".to_owned()), "");
    };
    let reports = match ads.recent_report().await {
        Ok(reports) => reports,
        Err(error) => return error_page(&error, ""),
    };
    let dollars = |micros: i64| format!("{:.2}", micros as f64 / 1e6);
    let page = layout(
        chrome("Advertise"),
        html! {
            h1 { "Sponsored products" }
            @if reports.is_empty() {
                p.empty { "No campaigns yet." }
            } @else {
                table.comparison aria-label="Campaigns" {
                    thead { tr { th { "Campaign" } th { "Advertiser" } th { "Impressions" } th { "Clicks" } th { "CTR" } th { "Spend" } th { "Sales" } th { "ACoS" } } }
                    tbody {
                        @for report in &reports {
                            tr {
                                td { (report.name) } td { (report.advertiser) } td { (report.impressions) } td { (report.clicks) }
                                td { @if let Some(ctr) = report.ctr { (format!("{:.1}%", ctr * 100.0)) } @else { "—" } }
                                td { (dollars(report.spend_micros)) } td { (dollars(report.sales_micros)) }
                                td { @if let Some(acos) = report.acos { (format!("{:.1}%", acos * 100.0)) } @else { "—" } }
                            }
                        }
                    }
                }
            }
            h2 { "New campaign" }
            @if let Some(problem) = problem { p.problem role="alert" { (problem) } }
            form.ask-form action="/advertise" method="post" {
                label for="advertiser" { "Advertiser" } input #advertiser name="advertiser" required;
                label for="name" { "Campaign name" } input #name name="name" required;
                label for="budget" { "Daily budget (USD)" } input #budget name="daily_budget_usd" type="number" step="0.01" min="0.01" required;
                label for="products" { "Product ids (comma-separated)" } input #products name="products" required;
                label for="keywords" { "Keywords (comma-separated)" } input #keywords name="keywords";
                label for="categories" { "Categories (comma-separated)" } input #categories name="categories";
                label for="bid" { "Bid per click (USD)" } input #bid name="bid_usd" type="number" step="0.01" min="0.01" required;
                button type="submit" { "Create campaign" }
            }
        },
    );
    (status, page).into_response()
}

#[derive(Deserialize)]
struct CampaignForm {
    advertiser: String,
    name: String,
    daily_budget_usd: String,
    products: String,
    #[serde(default)]
    keywords: String,
    #[serde(default)]
    categories: String,
    bid_usd: String,
}

fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn create_campaign(
    State(storefront): State<Storefront>,
    form: Result<Form<CampaignForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return advertise(
            &storefront,
            Some("Please fill in every field."),
            StatusCode::BAD_REQUEST,
        )
        .await;
    };
    let Some(ads) = storefront.ads() else {
        return error_page(&CommerceError::NotFound("this store runs no ads".to_owned()), "");
    };
    let number = |text: &str| text.trim().parse::<f64>().unwrap_or(f64::NAN);
    let bid = number(&form.bid_usd);
    let targets = |text: &str| {
        list(text)
            .into_iter()
            .map(|value| TargetDraft { value, bid_usd: bid })
            .collect()
    };
    let draft = CampaignDraft {
        advertiser: form.advertiser,
        name: form.name,
        daily_budget_usd: number(&form.daily_budget_usd),
        products: list(&form.products),
        keywords: targets(&form.keywords),
        categories: targets(&form.categories),
    };
    match ads.create_campaign(draft, &storefront).await {
        Ok(_) => Redirect::to("/advertise").into_response(),
        Err(CommerceError::InvalidRequest(message)) => {
            advertise(
                &storefront,
                Some(&format!("Please check the campaign: {message}.")),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        Err(error) => error_page(&error, ""),
    }
}

async fn sell_page() -> Response {
    sell(None, None).into_response()
}

fn sell(notes: Option<&str>, result: Option<Result<(commerce::Listing, commerce::ListingQuality), String>>) -> Markup {
    layout(
        chrome("Sell"),
        html! {
            h1 { "Write a listing" }
            p.muted { "Describe the product in a few words or notes; the listing is written from them and scored." }
            form.ask-form action="/sell" method="post" {
                label for="notes" { "Your notes" }
                textarea #notes name="notes" rows="3" required { (notes.unwrap_or_default()) }
                button type="submit" { "Write listing" }
            }
            @match result {
                Some(Ok((listing, quality))) => {
                    article.listing aria-label="Listing" {
                        h2 { (listing.title) }
                        p.muted { (listing.category.join(" › ")) }
                        ul { @for bullet in &listing.bullets { li { (bullet) } } }
                        p { (listing.description) }
                        dl.product-facts { @for (name, value) in &listing.attributes { dt { (name) } dd { (value) } } }
                        p.quality { "Quality score: " strong { (quality.score) } " / 100" }
                        @if !quality.reasons.is_empty() {
                            ul.reasons { @for reason in &quality.reasons { li { (reason) } } }
                        }
                    }
                }
                Some(Err(problem)) => p.problem role="alert" { (problem) },
                None => {}
            }
        },
    )
}

#[derive(Deserialize)]
struct SellForm {
    notes: String,
}

async fn write_listing(State(storefront): State<Storefront>, form: Result<Form<SellForm>, FormRejection>) -> Response {
    let notes = form.map(|Form(form)| form.notes).unwrap_or_default();
    let result = match storefront.write_listing(&notes).await {
        Ok(listing) => {
            let quality = commerce::score_listing(&listing, Some(&notes));
            Ok((listing, quality))
        }
        Err(CommerceError::InvalidRequest(message)) => Err(format!("Please check your notes: {message}.")),
        Err(error) => return error_page(&error, ""),
    };
    let status = if result.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    (status, sell(Some(&notes), Some(result))).into_response()
}
