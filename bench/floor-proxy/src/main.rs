//! `floor-proxy`: the thinnest reverse proxy that hyper and tokio make, for the gateway benchmark's floor. It
//! forwards every request to `--upstream` over a pooled keep-alive client, body and headers as they came, and
//! streams the answer back; nothing is parsed, checked or recorded. What it adds over a direct call is what any
//! gateway on this stack pays for the extra hop (two more socket round trips and the task wake-ups between them)
//! before doing any work of its own, so a gateway's added latency is best read next to this one's.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// A reverse proxy with nothing in it, for measuring the cost of the hop itself.
#[derive(Parser)]
#[command(name = "floor-proxy", version, about)]
struct Args {
    /// Address to listen on; port 0 picks a free port. The first stdout line is `listening on ADDRESS`.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The upstream every request goes to, as `HOST:PORT` (plain HTTP).
    #[arg(long)]
    upstream: SocketAddr,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // One worker per core, like flywheel's own runtime.
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("listening on {}", listener.local_addr()?);
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new()).build(connector);
    let upstream = args.upstream.to_string();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                eprintln!("accept failed: {error}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let client = client.clone();
                let upstream = upstream.clone();
                async move {
                    let (mut parts, body) = request.into_parts();
                    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
                    parts.uri = Uri::try_from(format!("http://{upstream}{path}"))?;
                    let answer = client.request(Request::from_parts(parts, body)).await?;
                    anyhow::Ok(answer)
                }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection ended with an error: {error}");
            }
        });
    }
}
