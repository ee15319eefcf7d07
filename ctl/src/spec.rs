//! etcdctl's command tree: names, usage lines, descriptions and flags, as etcdctl 3.4 declares
//! them (its help and error output are generated from these, so they must match it word for
//! word).

use crate::cli::{Cmd, Flag, Kind};

const fn flag(name: &'static str, kind: Kind, default: &'static str, usage: &'static str) -> Flag {
    Flag {
        name,
        short: None,
        kind,
        default,
        usage,
    }
}

const fn short(
    name: &'static str,
    short: char,
    kind: Kind,
    default: &'static str,
    usage: &'static str,
) -> Flag {
    Flag {
        name,
        short: Some(short),
        kind,
        default,
        usage,
    }
}

fn bool_flag(name: &'static str, usage: &'static str) -> Flag {
    flag(name, Kind::Bool, "false", usage)
}

fn str_flag(name: &'static str, default: &'static str, usage: &'static str) -> Flag {
    flag(name, Kind::Str, default, usage)
}

/// A command that runs.
fn leaf(use_: &'static str, short: &'static str, flags: Vec<Flag>) -> Cmd {
    Cmd::new(use_, short, true).flags(flags)
}

/// A command that only groups subcommands (running it prints its help).
fn group(use_: &'static str, short: &'static str, subs: Vec<Cmd>) -> Cmd {
    Cmd::new(use_, short, false).subs(subs)
}

/// The global flags (persistent on the root command).
fn global_flags() -> Vec<Flag> {
    vec![
        flag("endpoints", Kind::StrSlice, "[127.0.0.1:2379]", "gRPC endpoints"),
        bool_flag("debug", "enable client-side debug logging"),
        short(
            "write-out",
            'w',
            Kind::Str,
            "simple",
            "set the output format (fields, json, protobuf, simple, table)",
        ),
        bool_flag("hex", "print byte strings as hex encoded strings"),
        flag("dial-timeout", Kind::Duration, "2s", "dial timeout for client connections"),
        flag(
            "command-timeout",
            Kind::Duration,
            "5s",
            "timeout for short running command (excluding dial timeout)",
        ),
        flag("keepalive-time", Kind::Duration, "2s", "keepalive time for client connections"),
        flag(
            "keepalive-timeout",
            Kind::Duration,
            "6s",
            "keepalive timeout for client connections",
        ),
        flag(
            "insecure-transport",
            Kind::Bool,
            "true",
            "disable transport security for client connections",
        ),
        flag(
            "insecure-discovery",
            Kind::Bool,
            "true",
            "accept insecure SRV records describing cluster endpoints",
        ),
        bool_flag(
            "insecure-skip-tls-verify",
            "skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)",
        ),
        str_flag("cert", "", "identify secure client using this TLS certificate file"),
        str_flag("key", "", "identify secure client using this TLS key file"),
        str_flag(
            "cacert",
            "",
            "verify certificates of TLS-enabled secure servers using this CA bundle",
        ),
        str_flag(
            "user",
            "",
            "username[:password] for authentication (prompt if password is not supplied)",
        ),
        str_flag(
            "password",
            "",
            "password for authentication (if this option is used, --user option shouldn't include password)",
        ),
        short(
            "discovery-srv",
            'd',
            Kind::Str,
            "",
            "domain name to query for SRV records describing cluster endpoints",
        ),
        str_flag(
            "discovery-srv-name",
            "",
            "service name to query when using DNS discovery",
        ),
    ]
}

const PUT_LONG: &str = "
Puts the given key into the store.

When <value> begins with '-', <value> is interpreted as a flag.
Insert '--' for workaround:

$ put <key> -- <value>
$ put -- <key> <value>

If <value> isn't given as a command line argument and '--ignore-value' is not specified,
this command tries to read the value from standard input.

If <lease> isn't given as a command line argument and '--ignore-lease' is not specified,
this command tries to read the value from standard input.

For example,
$ cat file | put <key>
will store the content of the file to <key>.
";

pub fn get_cmd() -> Cmd {
    leaf(
        "get [options] <key> [range_end]",
        "Gets the key or a range of keys",
        vec![
            str_flag("consistency", "l", "Linearizable(l) or Serializable(s)"),
            str_flag(
                "order",
                "",
                "Order of results; ASCEND or DESCEND (ASCEND by default)",
            ),
            str_flag(
                "sort-by",
                "",
                "Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION",
            ),
            flag("limit", Kind::Int64, "0", "Maximum number of results"),
            bool_flag("prefix", "Get keys with matching prefix"),
            bool_flag(
                "from-key",
                "Get keys that are greater than or equal to the given key using byte compare",
            ),
            flag("rev", Kind::Int64, "0", "Specify the kv revision"),
            bool_flag("keys-only", "Get only the keys"),
            bool_flag(
                "print-value-only",
                "Only write values when using the \"simple\" output format",
            ),
            // etcdctl 3.5's: print only the number of keys.
            bool_flag("count-only", "Get only the count"),
        ],
    )
}

pub fn put_cmd() -> Cmd {
    leaf(
        "put [options] <key> <value> (<value> can also be given from stdin)",
        "Puts the given key into the store",
        vec![
            str_flag(
                "lease",
                "0",
                "lease ID (in hexadecimal) to attach to the key",
            ),
            bool_flag(
                "prev-kv",
                "return the previous key-value pair before modification",
            ),
            bool_flag("ignore-value", "updates the key using its current value"),
            bool_flag("ignore-lease", "updates the key using its current lease"),
        ],
    )
    .long(PUT_LONG)
}

pub fn del_cmd() -> Cmd {
    leaf(
        "del [options] <key> [range_end]",
        "Removes the specified key or range of keys [key, range_end)",
        vec![
            bool_flag("prefix", "delete keys with matching prefix"),
            bool_flag("prev-kv", "return deleted key-value pairs"),
            bool_flag(
                "from-key",
                "delete keys that are greater than or equal to the given key using byte compare",
            ),
        ],
    )
}

pub fn watch_cmd() -> Cmd {
    leaf(
        "watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]",
        "Watches events stream on keys or prefixes",
        vec![
            short("interactive", 'i', Kind::Bool, "false", "Interactive mode"),
            bool_flag("prefix", "Watch on a prefix if prefix is set"),
            flag("rev", Kind::Int64, "0", "Revision to start watching"),
            bool_flag(
                "prev-kv",
                "get the previous key-value pair before the event happens",
            ),
        ],
    )
}

/// The whole tree, in the order etcdctl adds its commands (the order of its suggestions).
pub fn root() -> Cmd {
    let endpoint_cluster = bool_flag("cluster", "use all endpoints from the cluster member list");
    let cmds = vec![
        get_cmd(),
        put_cmd(),
        del_cmd(),
        leaf(
            "txn [options]",
            "Txn processes all the requests in one transaction",
            vec![short(
                "interactive",
                'i',
                Kind::Bool,
                "false",
                "Input transaction in interactive mode",
            )],
        ),
        leaf(
            "compaction [options] <revision>",
            "Compacts the event history in etcd",
            vec![bool_flag(
                "physical",
                "'true' to wait for compaction to physically remove all old revisions",
            )],
        ),
        group(
            "alarm <subcommand>",
            "Alarm related commands",
            vec![
                leaf("disarm", "Disarms all alarms", vec![]),
                leaf("list", "Lists all alarms", vec![]),
            ],
        ),
        leaf(
            "defrag",
            "Defragments the storage of the etcd members with given endpoints",
            vec![str_flag(
                "data-dir",
                "",
                "Optional. If present, defragments a data directory not in use by etcd.",
            )],
        )
        .persistent(vec![endpoint_cluster.clone()]),
        group(
            "endpoint <subcommand>",
            "Endpoint related commands",
            vec![
                leaf(
                    "health",
                    "Checks the healthiness of endpoints specified in `--endpoints` flag",
                    vec![],
                ),
                leaf(
                    "status",
                    "Prints out the status of endpoints specified in `--endpoints` flag",
                    vec![],
                )
                .long("When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are endpoint, ID, version, db size, is leader, is learner, raft term, raft index, raft applied index, errors.
"),
                leaf(
                    "hashkv",
                    "Prints the KV history hash for each endpoint in --endpoints",
                    vec![],
                )
                .persistent(vec![flag(
                    "rev",
                    Kind::Int64,
                    "0",
                    "maximum revision to hash (default: all revisions)",
                )]),
            ],
        )
        .persistent(vec![endpoint_cluster]),
        leaf(
            "move-leader <transferee-member-id>",
            "Transfers leadership to another etcd cluster member.",
            vec![],
        ),
        watch_cmd(),
        leaf("version", "Prints the version of etcdctl", vec![]),
        group(
            "lease <subcommand>",
            "Lease related commands",
            vec![
                leaf("grant <ttl>", "Creates leases", vec![]),
                leaf("revoke <leaseID>", "Revokes leases", vec![]),
                leaf(
                    "timetolive <leaseID> [options]",
                    "Get lease information",
                    vec![bool_flag("keys", "Get keys attached to this lease")],
                ),
                leaf("list", "List all active leases", vec![]),
                leaf(
                    "keep-alive [options] <leaseID>",
                    "Keeps leases alive (renew)",
                    vec![bool_flag(
                        "once",
                        "Resets the keep-alive time to its original value and exits immediately",
                    )],
                ),
            ],
        ),
        group(
            "member <subcommand>",
            "Membership related commands",
            vec![
                leaf(
                    "add <memberName> [options]",
                    "Adds a member into the cluster",
                    vec![
                        str_flag("peer-urls", "", "comma separated peer URLs for the new member."),
                        bool_flag("learner", "indicates if the new member is raft learner"),
                    ],
                ),
                leaf("remove <memberID>", "Removes a member from the cluster", vec![]),
                leaf(
                    "update <memberID> [options]",
                    "Updates a member in the cluster",
                    vec![str_flag(
                        "peer-urls",
                        "",
                        "comma separated peer URLs for the updated member.",
                    )],
                ),
                leaf("list", "Lists all members in the cluster", vec![]).long(
                    "When --write-out is set to simple, this command prints out comma-separated member lists for each endpoint.
The items in the lists are ID, Status, Name, Peer Addrs, Client Addrs, Is Learner.
",
                ),
                leaf(
                    "promote <memberID>",
                    "Promotes a non-voting member in the cluster",
                    vec![],
                )
                .long("Promotes a non-voting learner member to a voting one in the cluster.\n"),
            ],
        ),
        group(
            "snapshot <subcommand>",
            "Manages etcd node snapshots",
            vec![
                leaf(
                    "save <filename>",
                    "Stores an etcd node backend snapshot to a given file",
                    vec![],
                ),
                leaf(
                    "restore <filename> [options]",
                    "Restores an etcd member snapshot to an etcd directory",
                    vec![
                        str_flag("data-dir", "", "Path to the data directory"),
                        str_flag(
                            "wal-dir",
                            "",
                            "Path to the WAL directory (use --data-dir if none given)",
                        ),
                        str_flag(
                            "initial-cluster",
                            "default=http://localhost:2380",
                            "Initial cluster configuration for restore bootstrap",
                        ),
                        str_flag(
                            "initial-cluster-token",
                            "etcd-cluster",
                            "Initial cluster token for the etcd cluster during restore bootstrap",
                        ),
                        str_flag(
                            "initial-advertise-peer-urls",
                            "http://localhost:2380",
                            "List of this member's peer URLs to advertise to the rest of the cluster",
                        ),
                        str_flag("name", "default", "Human-readable name for this member"),
                        bool_flag(
                            "skip-hash-check",
                            "Ignore snapshot integrity hash value (required if copied from data directory)",
                        ),
                    ],
                ),
                leaf(
                    "status <filename>",
                    "Gets backend snapshot status of a given file",
                    vec![],
                )
                .long("When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are hash, revision, total keys, total size.
"),
            ],
        ),
        leaf(
            "make-mirror [options] <destination>",
            "Makes a mirror at the destination etcd cluster",
            vec![
                str_flag("prefix", "", "Key-value prefix to mirror"),
                str_flag(
                    "dest-prefix",
                    "",
                    "destination prefix to mirror a prefix to a different prefix in the destination cluster",
                ),
                bool_flag(
                    "no-dest-prefix",
                    "mirror key-values to the root of the destination cluster",
                ),
                str_flag(
                    "dest-cert",
                    "",
                    "Identify secure client using this TLS certificate file for the destination cluster",
                ),
                str_flag("dest-key", "", "Identify secure client using this TLS key file"),
                str_flag(
                    "dest-cacert",
                    "",
                    "Verify certificates of TLS enabled secure servers using this CA bundle",
                ),
                flag(
                    "dest-insecure-transport",
                    Kind::Bool,
                    "true",
                    "Disable transport security for client connections",
                ),
            ],
        ),
        leaf(
            "migrate",
            "Migrates keys in a v2 store to a mvcc store",
            vec![
                bool_flag("no-ttl", "Do not convert TTL keys"),
                str_flag("data-dir", "", "Path to the data directory"),
                str_flag("wal-dir", "", "Path to the WAL directory"),
                str_flag("transformer", "", "Path to the user-provided transformer program"),
            ],
        ),
        leaf(
            "lock <lockname> [exec-command arg1 arg2 ...]",
            "Acquires a named lock",
            vec![flag("ttl", Kind::Int, "10", "timeout for session")],
        ),
        leaf(
            "elect <election-name> [proposal]",
            "Observes and participates in leader election",
            vec![short("listen", 'l', Kind::Bool, "false", "observation mode")],
        ),
        group(
            "auth <enable or disable>",
            "Enable or disable authentication",
            vec![
                leaf("enable", "Enables authentication", vec![]),
                leaf("disable", "Disables authentication", vec![]),
            ],
        ),
        group(
            "user <subcommand>",
            "User related commands",
            vec![
                leaf(
                    "add <user name or user:password> [options]",
                    "Adds a new user",
                    vec![
                        flag(
                            "interactive",
                            Kind::Bool,
                            "true",
                            "Read password from stdin instead of interactive terminal",
                        ),
                        str_flag(
                            "new-user-password",
                            "",
                            "Supply password from the command line flag",
                        ),
                        bool_flag(
                            "no-password",
                            "Create a user without password (CN based auth only)",
                        ),
                    ],
                ),
                leaf("delete <user name>", "Deletes a user", vec![]),
                leaf(
                    "get <user name> [options]",
                    "Gets detailed information of a user",
                    vec![bool_flag("detail", "Show permissions of roles granted to the user")],
                ),
                leaf("list", "Lists all users", vec![]),
                leaf(
                    "passwd <user name> [options]",
                    "Changes password of user",
                    vec![flag(
                        "interactive",
                        Kind::Bool,
                        "true",
                        "If true, read password from stdin instead of interactive terminal",
                    )],
                ),
                leaf(
                    "grant-role <user name> <role name>",
                    "Grants a role to a user",
                    vec![],
                ),
                leaf(
                    "revoke-role <user name> <role name>",
                    "Revokes a role from a user",
                    vec![],
                ),
            ],
        ),
        group(
            "role <subcommand>",
            "Role related commands",
            vec![
                leaf("add <role name>", "Adds a new role", vec![]),
                leaf("delete <role name>", "Deletes a role", vec![]),
                leaf("get <role name>", "Gets detailed information of a role", vec![]),
                leaf("list", "Lists all roles", vec![]),
                leaf(
                    "grant-permission [options] <role name> <permission type> <key> [endkey]",
                    "Grants a key to a role",
                    vec![
                        bool_flag("prefix", "grant a prefix permission"),
                        bool_flag(
                            "from-key",
                            "grant a permission of keys that are greater than or equal to the given key using byte compare",
                        ),
                    ],
                ),
                leaf(
                    "revoke-permission <role name> <key> [endkey]",
                    "Revokes a key from a role",
                    vec![
                        bool_flag("prefix", "revoke a prefix permission"),
                        bool_flag(
                            "from-key",
                            "revoke a permission of keys that are greater than or equal to the given key using byte compare",
                        ),
                    ],
                ),
            ],
        ),
        group(
            "check <subcommand>",
            "commands for checking properties of the etcd cluster",
            vec![
                leaf(
                    "perf [options]",
                    "Check the performance of the etcd cluster",
                    vec![
                        str_flag(
                            "load",
                            "s",
                            "The performance check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)",
                        ),
                        str_flag(
                            "prefix",
                            "/etcdctl-check-perf/",
                            "The prefix for writing the performance check's keys.",
                        ),
                        bool_flag(
                            "auto-compact",
                            "Compact storage with last revision after test is finished.",
                        ),
                        bool_flag("auto-defrag", "Defragment storage after test is finished."),
                        // concordctl's, hidden: seconds to run instead of the load's 60.
                        flag("duration", Kind::Int, "0", "seconds to run (default: the load's)"),
                    ],
                ),
                leaf(
                    "datascale [options]",
                    "Check the memory usage of holding data for different workloads on a given server endpoint.",
                    vec![
                        str_flag(
                            "load",
                            "s",
                            "The datascale check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)",
                        ),
                        str_flag(
                            "prefix",
                            "/etcdctl-check-datascale/",
                            "The prefix for writing the datascale check's keys.",
                        ),
                        bool_flag(
                            "auto-compact",
                            "Compact storage with last revision after test is finished.",
                        ),
                        bool_flag("auto-defrag", "Defragment storage after test is finished."),
                    ],
                )
                .long("If no endpoint is provided, localhost will be used. If multiple endpoints are provided, first endpoint will be used."),
            ],
        ),
        // Added by cobra itself, after etcdctl's commands.
        group(
            "completion",
            "Generate the autocompletion script for the specified shell",
            vec![
                leaf("bash", "Generate the autocompletion script for bash", vec![]),
                leaf("fish", "Generate the autocompletion script for fish", vec![]),
                leaf(
                    "powershell",
                    "Generate the autocompletion script for powershell",
                    vec![],
                ),
                leaf("zsh", "Generate the autocompletion script for zsh", vec![]),
            ],
        )
        .long("Generate the autocompletion script for etcdctl for the specified shell.
See each sub-command's help for details on how to use the generated script.
"),
        leaf("help [command]", "Help about any command", vec![])
            .long("Help provides help for any command in the application.
Simply type etcdctl help [path to command] for full details.")
            .hidden_from_suggestions(),
    ];
    group("etcdctl", "A simple command line client for etcd3.", cmds).persistent(global_flags())
}
