//! The storefront's server-rendered pages: home, search results (with facets and sponsored products), product
//! pages, the shopping assistant's panel and the cart, plus their stylesheet.
//! Pages read only through `commerce::Storefront`; every commerce failure becomes an HTML page with the status
//! `CommerceError::status` gives it, here in `error_page` and nowhere else.

mod business;
mod console;
mod pages;
mod shop;

use axum::Router;
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use commerce::{CommerceError, EventKind, FacetField, Filter, SearchQuery, Storefront};
use serde::Deserialize;

pub use crate::business::business_router;
pub use crate::console::{AnswerFuture, Console, FiguresFuture, LoopFigures, ReplayFuture, console_router};
use crate::pages::{Asked, HomeCatalog, MAX_PAGE, PER_PAGE};

/// The stylesheet, built into the binary: no asset pipeline, no external requests.
const STYLESHEET: &str = include_str!("../assets/store.css");

/// The storefront pages, serving from `storefront`.
pub fn router(storefront: Storefront) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/search", get(search))
        .route("/products/{id}", get(product))
        .route("/products/{id}/ask", post(ask))
        .route("/sponsored/{impression}", get(sponsored_click))
        .route("/assistant", get(shop::assistant_page).post(shop::assistant_turn))
        .route("/cart", get(shop::cart_page).post(shop::add_to_cart))
        .route("/assets/store.css", get(stylesheet))
        .fallback(page_not_found)
        .with_state(storefront)
}

async fn home(State(storefront): State<Storefront>) -> Response {
    let catalog = storefront.product_count().and_then(|product_count| {
        Ok(HomeCatalog {
            product_count,
            categories: storefront.top_level_categories()?,
        })
    });
    match catalog {
        Ok(catalog) => pages::home(Some(&catalog)).into_response(),
        // The home page stays usable while the catalog loads; it says so and refreshes.
        Err(CommerceError::CatalogLoading) => pages::home(None).into_response(),
        Err(error) => error_page(&error, ""),
    }
}

/// `GET /search` parameters; unknown ones are ignored, as links from elsewhere may carry them.
#[derive(Deserialize)]
struct SearchParams {
    q: Option<String>,
    page: Option<usize>,
    filter: Option<String>,
}

async fn search(
    State(storefront): State<Storefront>,
    headers: HeaderMap,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Response {
    let params = match params {
        Ok(Query(params)) => params,
        Err(rejection) => return error_page(&CommerceError::InvalidRequest(rejection.body_text()), ""),
    };
    let text = params.q.unwrap_or_default();
    let page = params.page.unwrap_or(1);
    if !(1..=MAX_PAGE).contains(&page) {
        let message = format!("There is no page {page}; results go from page 1 to page {MAX_PAGE} at most.");
        return error_page(&CommerceError::InvalidRequest(message), &text);
    }
    if text.trim().is_empty() {
        return pages::search_prompt().into_response();
    }
    let filter_text = params.filter.unwrap_or_default();
    let filter = match Filter::parse(&filter_text) {
        Ok(filter) => filter,
        Err(error) => return error_page(&error, &text),
    };
    let (session, new_cookie) = shopping_session(&headers);
    let query = SearchQuery {
        limit: PER_PAGE,
        offset: (page - 1) * PER_PAGE,
        filter,
        facets: vec![FacetField::Category, FacetField::Class],
        sponsored: page == 1,
        // Paging and filtering the same search is not another search.
        session: (page == 1 && filter_text.is_empty()).then_some(session),
        ..SearchQuery::new(&text)
    };
    match storefront.search(&query).await {
        Ok(results) => with_cookie(
            pages::search_results(&results, page, &filter_text).into_response(),
            new_cookie,
        ),
        Err(error) => error_page(&error, &query.text),
    }
}

/// `GET /sponsored/{impression}`: a shopper followed a sponsored product; the click is recorded (and charged to
/// the campaign) before the product page opens.
async fn sponsored_click(
    State(storefront): State<Storefront>,
    impression: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(impression)) = impression else {
        return page_not_found().await;
    };
    let Some(ads) = storefront.ads() else {
        return page_not_found().await;
    };
    match ads.click(&impression).await {
        Ok(click) => Redirect::to(&pages::product_url(&click.product_id, None)).into_response(),
        Err(error) => error_page(&error, ""),
    }
}

/// `GET /products/{id}` parameters: the search the shopper came from, for the way back.
#[derive(Deserialize)]
struct ProductParams {
    q: Option<String>,
}

async fn product(
    State(storefront): State<Storefront>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<ProductParams>, QueryRejection>,
) -> Response {
    let Path(id) = match id {
        Ok(id) => id,
        Err(rejection) => return error_page(&CommerceError::InvalidRequest(rejection.body_text()), ""),
    };
    // A garbled way back is not worth failing the product page for.
    let query = params
        .ok()
        .and_then(|Query(params)| params.q)
        .filter(|q| !q.trim().is_empty());
    let product = match storefront.product(&id) {
        Ok(product) => product,
        Err(error) => return error_page(&error, query.as_deref().unwrap_or_default()),
    };
    let (session, new_cookie) = shopping_session(&headers);
    // Ranked by sessions before this one, so a shopper's own view does not recommend itself.
    let also_viewed = storefront
        .also(EventKind::View, &id, ALSO_VIEWED)
        .await
        .unwrap_or_default();
    storefront.record(EventKind::View, &session, Some(&id), None);
    with_cookie(
        pages::product_page(&product, query.as_deref(), None, &also_viewed).into_response(),
        new_cookie,
    )
}

/// Products shown under "Customers also viewed".
const ALSO_VIEWED: usize = 6;
/// The cookie naming a shopper's session: random, with nothing in it but an id.
const SESSION_COOKIE: &str = "fw_session";

/// The shopper's session id from its cookie, or a new one and the `Set-Cookie` value that starts it.
pub(crate) fn shopping_session(headers: &HeaderMap) -> (String, Option<String>) {
    let existing = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|cookie| cookie.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty() && value.len() <= 64)
        .map(|(_, value)| value.to_owned());
    match existing {
        Some(session) => (session, None),
        None => {
            let session = uuid::Uuid::new_v4().simple().to_string();
            let cookie = format!("{SESSION_COOKIE}={session}; Path=/; Max-Age=2592000; SameSite=Lax; HttpOnly");
            (session, Some(cookie))
        }
    }
}

pub(crate) fn with_cookie(mut response: Response, cookie: Option<String>) -> Response {
    if let Some(value) = cookie.and_then(|cookie| HeaderValue::from_str(&cookie).ok()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The product page's question form.
#[derive(Deserialize)]
struct AskForm {
    question: String,
}

/// `POST /products/{id}/ask`: the product page again, with the answer (or why there is none) under the form.
async fn ask(
    State(storefront): State<Storefront>,
    id: Result<Path<String>, PathRejection>,
    form: Result<Form<AskForm>, FormRejection>,
) -> Response {
    let Path(id) = match id {
        Ok(id) => id,
        Err(rejection) => return error_page(&CommerceError::InvalidRequest(rejection.body_text()), ""),
    };
    let product = match storefront.product(&id) {
        Ok(product) => product,
        Err(error) => return error_page(&error, ""),
    };
    // A form without the field is an empty question, which gets the same friendly message.
    let question = form.map(|Form(form)| form.question).unwrap_or_default();
    let (status, asked) = match storefront.ask(&id, &question).await {
        Ok(answer) => (StatusCode::OK, Asked::Answer(answer)),
        Err(error) => (
            error.status(),
            Asked::Problem {
                message: ask_problem(&error),
                question,
            },
        ),
    };
    (status, pages::product_page(&product, None, Some(&asked), &[])).into_response()
}

/// What a shopper is told when a question cannot be answered.
fn ask_problem(error: &CommerceError) -> String {
    match error {
        CommerceError::InvalidRequest(message) => format!("Please check your question: {message}."),
        error if error.status() == StatusCode::SERVICE_UNAVAILABLE => {
            "The assistant is not available right now. Please try again in a moment.".to_owned()
        }
        other => {
            tracing::error!(code = other.code(), error = %other, "product question failed");
            "The assistant could not answer that. Please try again.".to_owned()
        }
    }
}

/// Any path no route claims: a store page saying so, not an empty 404.
async fn page_not_found() -> Response {
    let page = pages::problem("Page not found", "There is no page at this address.", "");
    (StatusCode::NOT_FOUND, page).into_response()
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            // Not fingerprinted, so cached briefly: a new release shows within the hour.
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// The one place a commerce failure becomes a page: the status comes from `CommerceError::status`, the
/// wording from here; server faults are logged and not detailed to shoppers.
pub(crate) fn error_page(error: &CommerceError, query: &str) -> Response {
    let page = match error {
        CommerceError::CatalogLoading => pages::loading(query),
        CommerceError::ProductNotFound(id) => pages::product_not_found(id),
        CommerceError::InvalidRequest(message) => pages::problem("That request didn't work", message, query),
        other => {
            tracing::error!(code = other.code(), error = %other, "storefront page failed");
            pages::problem(
                "The store is unavailable",
                "Something went wrong on our side. Please try again in a moment.",
                query,
            )
        }
    };
    (error.status(), page).into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::LazyLock;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    static DEMO: LazyLock<Storefront> = LazyLock::new(|| {
        let storefront = Storefront::new();
        storefront.load_demo().unwrap();
        storefront
    });

    async fn get_page(storefront: &Storefront, uri: &str) -> (StatusCode, String) {
        let request = Request::get(uri).body(Body::empty()).unwrap();
        let response = router(storefront.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    fn product_links(html: &str) -> usize {
        html.matches(r#"href="/products/"#).count()
    }

    #[tokio::test]
    async fn home_has_the_brand_a_search_box_and_categories() {
        let (status, html) = get_page(&DEMO, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("flywheel store"));
        assert_eq!(html.matches(r#"role="search""#).count(), 1);
        assert!(html.contains(r#"<label class="visually-hidden" for="search-q">"#));
        assert!(html.contains("6,482 products"));
        assert!(html.contains(r#"href="/search?q=Furniture""#));
        assert!(
            html.contains(r#"href="/search?q=D%C3%A9cor%20%26%20Pillows""#),
            "{html}"
        );
    }

    #[tokio::test]
    async fn search_lists_linked_results_with_pagination() {
        let (status, html) = get_page(&DEMO, "/search?q=king+poster+bed").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(product_links(&html), PER_PAGE);
        assert!(html.contains("Results for “king poster bed”"));
        assert!(html.contains("Showing 1–20 of "));
        assert!(html.contains("No ratings yet"));
        assert!(html.contains(r#"<ol class="breadcrumb" aria-label="Category"><li>Furniture</li>"#));
        assert!(
            html.contains(r#"rel="next" href="/search?q=king%20poster%20bed&amp;page=2""#),
            "{html}"
        );
        assert!(!html.contains(r#"rel="prev""#));

        let (status, second) = get_page(&DEMO, "/search?q=king+poster+bed&page=2").await;
        assert_eq!(status, StatusCode::OK);
        assert!(second.contains("Showing 21–40 of "));
        assert!(second.contains(r#"rel="prev" href="/search?q=king%20poster%20bed""#));
    }

    #[tokio::test]
    async fn empty_and_prompt_states() {
        let (status, html) = get_page(&DEMO, "/search?q=zzqqxx").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("No results for “zzqqxx”"));
        assert_eq!(product_links(&html), 0);

        let (status, html) = get_page(&DEMO, "/search?q=chair&page=400").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("There is no page 400 of these results"));

        for uri in ["/search", "/search?q=", "/search?q=+"] {
            let (status, html) = get_page(&DEMO, uri).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
            assert!(html.contains("What are you looking for?"), "{uri}");
        }
    }

    #[tokio::test]
    async fn odd_queries_render_escaped() {
        let (status, html) = get_page(&DEMO, "/search?q=%3Cscript%3E%22bed%22%20name%3A(").await;
        assert_eq!(status, StatusCode::OK);
        assert!(!html.contains("<script>"));
        assert!(
            html.contains("Results for “&lt;script&gt;&quot;bed&quot; name:(”"),
            "{html}"
        );
    }

    #[tokio::test]
    async fn bad_page_numbers_are_400_pages() {
        for uri in [
            "/search?q=bed&page=0",
            "/search?q=bed&page=two",
            "/search?q=bed&page=501",
        ] {
            let (status, html) = get_page(&DEMO, uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
            assert!(html.contains("That request didn't work"), "{uri}");
        }
    }

    #[tokio::test]
    async fn product_page_shows_the_product_and_the_way_back() {
        let (status, html) = get_page(&DEMO, "/products/13?q=king%20bed").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains(r#"<h1 class="product-name">king tufted low profile standard bed</h1>"#));
        assert!(html.contains("Furniture / Bedroom Furniture / Beds &amp; Headboards / Beds"));
        assert!(html.contains("<dd>Beds</dd>"));
        assert!(html.contains("<code>13</code>"));
        assert!(html.contains("No ratings yet"));
        assert!(html.contains(r#"href="/search?q=king%20bed">← Back to results for “king bed”"#));

        let (_, html) = get_page(&DEMO, "/products/13").await;
        assert!(html.contains(r#"href="/">← Back to the store"#));
    }

    #[tokio::test]
    async fn unknown_products_are_a_404_page() {
        let (status, html) = get_page(&DEMO, "/products/does-not-exist").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(html.contains("Product not found"));
    }

    #[tokio::test]
    async fn while_loading_pages_say_so_and_refresh() {
        let loading = Storefront::new();
        let (status, html) = get_page(&loading, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("still loading") && html.contains(r#"http-equiv="refresh""#));
        for uri in ["/search?q=bed", "/products/13"] {
            let (status, html) = get_page(&loading, uri).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{uri}");
            assert!(
                html.contains("still loading") && html.contains(r#"http-equiv="refresh""#),
                "{uri}"
            );
        }
    }

    #[tokio::test]
    async fn the_stylesheet_is_served_as_css() {
        let request = Request::get("/assets/store.css").body(Body::empty()).unwrap();
        let response = router(Storefront::new()).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/css; charset=utf-8");
    }

    #[tokio::test]
    async fn asking_without_an_assistant_keeps_the_page_and_explains() {
        let request = Request::post("/products/13/ask")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("question=is+it+oak%3F"))
            .unwrap();
        let response = router(DEMO.clone()).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let html = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        assert!(html.contains("king tufted low profile standard bed"));
        assert!(html.contains("not available right now"));
        assert!(
            html.contains(r#"value="is it oak?""#),
            "the question is kept in the form"
        );

        let request = Request::post("/products/13/ask")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("question=+++"))
            .unwrap();
        let response = router(DEMO.clone()).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let (status, _) = get_page(&DEMO, "/products/13").await;
        assert_eq!(status, StatusCode::OK);
    }

    async fn post_question(uri: &str, form: &str) -> (StatusCode, String) {
        let request = Request::post(uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form.to_owned()))
            .unwrap();
        let response = router(DEMO.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    /// The page's first `<h1>`, as rendered.
    fn first_h1(html: &str) -> &str {
        let start = html.find("<h1").unwrap();
        &html[start..start + html[start..].find("</h1>").unwrap()]
    }

    #[tokio::test]
    async fn the_question_form_is_a_plain_labelled_form_under_the_product() {
        let (_, html) = get_page(&DEMO, "/products/13").await;
        assert!(
            html.contains(r#"<form class="ask-form" method="post" action="/products/13/ask">"#),
            "{html}"
        );
        assert!(html.contains(r#"<label for="question">"#));
        assert!(
            html.contains(r#"<input id="question" type="text" name="question""#),
            "{html}"
        );
        // The header's search box stays the page's only searchbox.
        assert_eq!(html.matches(r#"type="search""#).count(), 1);
        assert_eq!(html.matches(r#"role="search""#).count(), 1);
        assert_eq!(
            first_h1(&html),
            r#"<h1 class="product-name">king tufted low profile standard bed"#
        );

        let (status, html) = post_question("/products/13/ask", &format!("question={}", "a".repeat(501))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            html.contains("Please check your question: the question is too long"),
            "{html}"
        );
        assert_eq!(
            first_h1(&html),
            r#"<h1 class="product-name">king tufted low profile standard bed"#
        );

        let (status, html) = post_question("/products/no-such-product/ask", "question=is+it+oak%3F").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(html.contains("Product not found"));
    }

    #[tokio::test]
    async fn unknown_paths_get_a_store_page() {
        let (status, html) = get_page(&DEMO, "/no/such/page").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(html.contains("Page not found"));
    }
}
