//! Generates Concord's member-to-member protocol (`proto/peer.proto`, package `concordpeerpb`)
//! at build time, as `concord-proto` does etcd's: protox (a pure-Rust protobuf compiler, no
//! `protoc`) and tonic-prost-build. The peer protocol is internal to the server, so it lives
//! here and not in the public `concord-proto`. It imports nothing.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["proto/peer.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Methods a service does not implement answer Unimplemented.
        .generate_default_stubs(true)
        .compile_fds(fds)?;
    Ok(())
}
