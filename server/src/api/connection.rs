//! Accepting client connections: each is wrapped for HTTP/2 `:authority` rewriting
//! (`concord_netio::H2AuthorityRewrite`) and write coalescing (`concord_netio::Coalesce`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use concord_netio::{Coalesce, H2AuthorityRewrite};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// One client connection as the gRPC server sees it. A type of this crate (both wrappers come
/// from `concord-netio`) so that it can implement tonic's `Connected`.
pub struct ClientConn(H2AuthorityRewrite<Coalesce<TcpStream>>);

impl tonic::transport::server::Connected for ClientConn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.get_ref().get_ref().connect_info()
    }
}

impl AsyncRead for ClientConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// Accepted client connections, wrapped. Accept errors (e.g. out of file descriptors) are logged
/// and retried rather than ending the server.
pub fn incoming(
    listener: TcpListener,
) -> impl futures::Stream<Item = Result<ClientConn, std::io::Error>> {
    futures::stream::unfold(listener, |listener| async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let conn = ClientConn(H2AuthorityRewrite::new(Coalesce::new(stream)));
                    return Some((Ok(conn), listener));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a client connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    })
}
