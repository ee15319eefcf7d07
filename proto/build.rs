//! Generates the wire types and tonic stubs at build time. The .proto files are compiled with
//! protox (a pure-Rust protobuf compiler), so no `protoc` needs to be installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=etcd");
    println!("cargo:rerun-if-changed=grpc");
    let files = [
        "etcd/mvccpb/kv.proto",
        "etcd/authpb/auth.proto",
        "etcd/etcdserverpb/rpc.proto",
        "etcd/v3lockpb/v3lock.proto",
        "etcd/v3electionpb/v3election.proto",
        // gRPC's health service (`grpc.health.v1`), which etcd serves on its client port.
        "grpc/health/v1/health.proto",
    ];
    // Imports are relative to the include roots: `import "mvccpb/kv.proto";` and so on.
    let fds = protox::compile(files, ["etcd", "."])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Methods a service does not implement answer Unimplemented.
        .generate_default_stubs(true)
        .compile_fds(fds)?;
    Ok(())
}
