//! member add, remove, update, list and promote.

use crate::ctx::Ctx;
use crate::exit;
use crate::gofmt;
use crate::printer::Format;
use crate::rpc::Target;

fn member_id(args: &[String]) -> u64 {
    if args.len() != 1 {
        exit::with_error(exit::BAD_ARGS, "member ID is not provided");
    }
    gofmt::parse_uint(&args[0], 16).unwrap_or_else(|e| {
        exit::with_error(
            exit::BAD_ARGS,
            &format!("bad member ID arg ({e}), expecting ID in Hex"),
        )
    })
}

fn peer_urls(ctx: &Ctx) -> Vec<String> {
    let urls = ctx.inv.flags.string("peer-urls");
    if urls.is_empty() {
        exit::with_error(exit::BAD_ARGS, "member peer urls not provided");
    }
    urls.split(',').map(str::to_string).collect()
}

pub async fn add(mut ctx: Ctx) {
    let args = ctx.args().to_vec();
    if args.is_empty() {
        exit::with_error(exit::BAD_ARGS, "member name not provided");
    }
    if args.len() > 1 {
        let mut ev = String::from("too many arguments");
        for s in &args {
            if s.to_lowercase().starts_with("http") {
                ev.push_str(&format!(", did you mean --peer-urls={s}"));
            }
        }
        exit::with_error(exit::BAD_ARGS, &ev);
    }
    let name = args[0].clone();
    let urls = peer_urls(&ctx);
    let learner = ctx.inv.flags.bool("learner");
    let (cfg, printer) = ctx.client_config();
    let client = ctx.client(&cfg);
    let r = cfg
        .call(&Target::Balanced, Some(cfg.deadline()), || {
            client.member_add(urls.clone(), learner)
        })
        .await
        .unwrap_or_else(|e| exit::with_error(exit::ERROR, &e));
    printer.member_add(&r);
    if printer.format == Format::Simple {
        let mut conf = Vec::new();
        for m in &r.members {
            for u in &m.peer_urls {
                let n = if m.id == r.member.id { &name } else { &m.name };
                conf.push(format!("{n}={u}"));
            }
        }
        println!();
        println!("ETCD_NAME={}", gofmt::quote_str(&name));
        println!("ETCD_INITIAL_CLUSTER={}", gofmt::quote_str(&conf.join(",")));
        println!(
            "ETCD_INITIAL_ADVERTISE_PEER_URLS={}",
            gofmt::quote_str(&ctx.inv.flags.string("peer-urls"))
        );
        println!("ETCD_INITIAL_CLUSTER_STATE=\"existing\"");
    }
}

pub async fn remove(mut ctx: Ctx) {
    let id = member_id(ctx.args());
    let (cfg, printer) = ctx.client_config();
    let client = ctx.client(&cfg);
    let r = cfg
        .call(&Target::Balanced, Some(cfg.deadline()), || {
            client.member_remove(id)
        })
        .await
        .unwrap_or_else(|e| exit::with_error(exit::ERROR, &e));
    printer.member_change("removed from", id, &r);
}

pub async fn update(mut ctx: Ctx) {
    let id = member_id(ctx.args());
    let urls = peer_urls(&ctx);
    let (cfg, printer) = ctx.client_config();
    let client = ctx.client(&cfg);
    let r = cfg
        .call(&Target::Balanced, Some(cfg.deadline()), || {
            client.member_update(id, urls.clone())
        })
        .await
        .unwrap_or_else(|e| exit::with_error(exit::ERROR, &e));
    printer.member_change("updated in", id, &r);
}

pub async fn promote(mut ctx: Ctx) {
    let id = member_id(ctx.args());
    let (cfg, printer) = ctx.client_config();
    let client = ctx.client(&cfg);
    let r = cfg
        .call(&Target::Balanced, Some(cfg.deadline()), || {
            client.member_promote(id)
        })
        .await
        .unwrap_or_else(|e| exit::with_error(exit::ERROR, &e));
    printer.member_change("promoted in", id, &r);
}

pub async fn list(mut ctx: Ctx) {
    let (cfg, printer) = ctx.client_config();
    let client = ctx.client(&cfg);
    let r = cfg
        .call(&Target::Balanced, Some(cfg.deadline()), || {
            client.member_list()
        })
        .await
        .unwrap_or_else(|e| exit::with_error(exit::ERROR, &e));
    printer.member_list(&r);
}
