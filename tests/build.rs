//! Generates a client for Concord's member-to-member protocol from the server's own
//! `server/proto/peer.proto`, for `tests/peer_input.rs`, which forges peer messages against a
//! real member. The server keeps its peer stubs private (they are not in the public
//! `concord-proto`), and these tests drive the `concord` binary rather than link the server.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../server/proto/peer.proto");
    let fds = protox::compile(["peer.proto"], ["../server/proto"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
