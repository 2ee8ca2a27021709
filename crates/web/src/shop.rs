//! The shopping assistant's chat panel and the cart, as plain pages and forms: they work without JavaScript.
//! The conversation travels in the form (a hidden field holding the turns so far), so the server keeps no chat
//! state; the cart is the session's, kept by the store.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use commerce::{AssistantEvent, CommerceError, Product, Storefront, Turn};
use futures::StreamExt;
use maud::{Markup, html};
use serde::Deserialize;

use crate::pages::{Chrome, layout, product_url};
use crate::{error_page, shopping_session, with_cookie};

/// `GET /assistant`: the panel, empty.
pub(crate) async fn assistant_page() -> Response {
    conversation_page(&[], &[], None).into_response()
}

#[derive(Deserialize)]
pub(crate) struct AssistantForm {
    message: String,
    #[serde(default)]
    history: String,
}

/// `POST /assistant`: the shopper's turn answered, below the conversation so far.
pub(crate) async fn assistant_turn(
    State(storefront): State<Storefront>,
    headers: HeaderMap,
    form: Result<Form<AssistantForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return error_page(&CommerceError::InvalidRequest("the message is missing".to_owned()), "");
    };
    // A history that does not parse is a conversation starting over, not an error for the shopper.
    let mut turns: Vec<Turn> = serde_json::from_str(&form.history).unwrap_or_default();
    turns.push(Turn {
        role: "user".to_owned(),
        content: form.message,
    });
    let (session, new_cookie) = shopping_session(&headers);
    let events = match storefront.converse(&turns, Some(&session)).await {
        Ok(events) => events.collect::<Vec<_>>().await,
        Err(CommerceError::InvalidRequest(message)) => {
            turns.pop();
            let page = conversation_page(&turns, &[], Some(&format!("Please check your message: {message}.")));
            return (StatusCode::BAD_REQUEST, page).into_response();
        }
        Err(error) => return error_page(&error, ""),
    };
    turns.push(Turn {
        role: "assistant".to_owned(),
        content: AssistantEvent::text_of(&events),
    });
    with_cookie(conversation_page(&turns, &events, None).into_response(), new_cookie)
}

fn conversation_page(turns: &[Turn], last_answer: &[AssistantEvent], problem: Option<&str>) -> Markup {
    let history = serde_json::to_string(turns).unwrap_or_default();
    let offer = last_answer.iter().find_map(|event| match event {
        AssistantEvent::Action {
            action: "offer_add_to_cart",
            product_id,
        } => Some(product_id.clone()),
        _ => None,
    });
    let chrome = Chrome {
        title: "Shopping assistant",
        header_search: Some(""),
        auto_refresh: false,
    };
    layout(
        chrome,
        html! {
            section.assistant aria-label="Shopping assistant" {
                h1 { "Shopping assistant" }
                p.muted { "Ask for what you need, compare products or get help deciding. Answers come from the catalog only." }
                ol.conversation {
                    @for turn in turns {
                        li class=(format!("turn turn-{}", turn.role)) {
                            span.speaker { (if turn.role == "user" { "You" } else { "Assistant" }) }
                            p.turn-text { (turn.content) }
                        }
                    }
                }
                @for event in last_answer {
                    @match event {
                        AssistantEvent::Products { products, .. } if !products.is_empty() => {
                            ul.assistant-products aria-label="Products in this answer" {
                                @for product in products { li { (product_link(product)) } }
                            }
                        }
                        AssistantEvent::Table { .. } => {
                            @if let Some(AssistantEvent::Products { products, .. }) = last_answer.first() {
                                (comparison(products))
                            }
                        }
                        _ => {}
                    }
                }
                @if let Some(problem) = problem {
                    p.problem role="alert" { (problem) }
                }
                @if offer.is_some() {
                    form.offer action="/assistant" method="post" {
                        input type="hidden" name="history" value=(history);
                        input type="hidden" name="message" value="yes";
                        button type="submit" { "Yes, add it to my cart" }
                    }
                }
                form.ask-form action="/assistant" method="post" {
                    input type="hidden" name="history" value=(history);
                    label for="assistant-message" { "Your message" }
                    textarea #assistant-message name="message" rows="2" required
                        placeholder="A rug for a small dining room…" {}
                    button type="submit" { "Send" }
                }
            }
        },
    )
}

fn product_link(product: &Product) -> Markup {
    html! { a href=(product_url(&product.id, None)) { (product.name) } " " span.muted { "#" (product.id) } }
}

/// The products side by side, from their facts.
fn comparison(products: &[Product]) -> Markup {
    html! {
        table.comparison {
            caption { "Side by side" }
            thead { tr { th scope="col" { "" } @for product in products { th scope="col" { (product_link(product)) } } } }
            tbody {
                tr { th scope="row" { "Type" } @for product in products { td { (product.class.join(", ")) } } }
                tr { th scope="row" { "Category" } @for product in products { td { (product.category_path.join(" › ")) } } }
                @if products.iter().any(|product| product.price.is_some()) {
                    tr { th scope="row" { "Price" } @for product in products {
                        td { @if let Some(price) = product.price { (format!("{price:.2}")) } @else { "—" } }
                    } }
                }
                @if products.iter().any(|product| product.rating.is_some()) {
                    tr { th scope="row" { "Rating" } @for product in products {
                        td { @if let Some(rating) = product.rating { (format!("{rating:.1}")) } @else { "—" } }
                    } }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct CartForm {
    product_id: String,
}

/// `POST /cart`: a product page's "Add to cart"; then the cart.
pub(crate) async fn add_to_cart(
    State(storefront): State<Storefront>,
    headers: HeaderMap,
    form: Result<Form<CartForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return error_page(&CommerceError::InvalidRequest("which product?".to_owned()), "");
    };
    let (session, new_cookie) = shopping_session(&headers);
    match storefront.add_to_cart(&session, &form.product_id, 1).await {
        Ok(_) => with_cookie(Redirect::to("/cart").into_response(), new_cookie),
        Err(error) => error_page(&error, ""),
    }
}

/// `GET /cart`: the session's cart.
pub(crate) async fn cart_page(State(storefront): State<Storefront>, headers: HeaderMap) -> Response {
    let (session, new_cookie) = shopping_session(&headers);
    let lines = match storefront.cart(&session).await {
        Ok(lines) => lines,
        Err(error) => return error_page(&error, ""),
    };
    let chrome = Chrome {
        title: "Your cart",
        header_search: Some(""),
        auto_refresh: false,
    };
    let page = layout(
        chrome,
        html! {
            h1 { "Your cart" }
            @if lines.is_empty() {
                p.empty { "Your cart is empty. " a href="/" { "Keep shopping" } "." }
            } @else {
                ul.cart aria-label="Cart items" {
                    @for line in &lines {
                        li {
                            @match storefront.product(&line.product_id) {
                                Ok(product) => (product_link(&product)),
                                Err(_) => span { "#" (line.product_id) " (no longer sold)" },
                            }
                            " × " span.quantity { (line.quantity) }
                        }
                    }
                }
            }
        },
    );
    with_cookie(page.into_response(), new_cookie)
}
