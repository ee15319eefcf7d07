//! Accepting client connections: each is wrapped for `:authority` rewriting (`authority.rs`)
//! and write coalescing (`concord_netio::Coalesce`).

use tokio::net::{TcpListener, TcpStream};

use super::authority::AuthorityRewrite;
use concord_netio::Coalesce;

/// One client connection as the gRPC server sees it.
pub type ClientConn = AuthorityRewrite<Coalesce<TcpStream>>;

impl tonic::transport::server::Connected for ClientConn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.get_ref().get_ref().connect_info()
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
                    return Some((Ok(AuthorityRewrite::new(Coalesce::new(stream))), listener));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a client connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    })
}
