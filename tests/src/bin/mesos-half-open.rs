//! `mesos-half-open`: opens `--count` connections from `--source` to
//! `--target`, sends half a request line on each and holds them all until
//! its stdin closes: the slow-client flood the connection limits must
//! withstand. Prints `held <n>` once every connection is made (refused
//! ones are held too). Several processes together exceed one process's
//! file limit.

use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Parser)]
#[command(name = "mesos-half-open", rename_all = "snake_case")]
struct Args {
    /// Where to connect (`ip:port`).
    #[arg(long)]
    target: SocketAddr,
    /// The local address to connect from.
    #[arg(long, default_value = "127.0.0.2")]
    source: IpAddr,
    /// How many connections to open.
    #[arg(long)]
    count: usize,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    raise_nofile().context("raising RLIMIT_NOFILE")?;
    let (target, source) = (args.target, args.source);
    let held: Vec<tokio::net::TcpStream> = futures::stream::iter(0..args.count)
        .map(|_| async move {
            let socket = match target {
                SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
                SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
            }
            .ok()?;
            socket.bind(SocketAddr::new(source, 0)).ok()?;
            let mut stream = socket.connect(target).await.ok()?;
            let _ = stream.write_all(b"GET /master/sta").await;
            Some(stream)
        })
        .buffer_unordered(args.concurrency.max(1))
        .filter_map(|s| async move { s })
        .collect()
        .await;
    println!("held {}", held.len());
    // Hold until whoever started us closes our stdin (or kills us).
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    while stdin.read(&mut buf).await.map(|n| n > 0).unwrap_or(false) {}
    drop(held);
    Ok(())
}

fn raise_nofile() -> nix::Result<()> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(())
}
