//! Where a serving command (`serve`, `demo`) listens, and the rule that keeps an API
//! without tokens off the network: with no token configured, only loopback addresses
//! (127.0.0.0/8, ::1, and names such as `localhost` that resolve only to them) are
//! allowed, unless `--insecure-no-auth` says the operator means it. The address is
//! resolved once, and every address it resolves to is checked (one beyond loopback makes
//! it exposed); the server then listens on the first of those addresses that binds, only
//! that one, and never resolves the name again, so it cannot resolve to something else
//! between the check and the bind.

use anyhow::{Context, bail};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// The addresses `listen` (`host:port`) resolves to.
pub fn resolve(listen: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = listen
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve the listen address {listen}"))?
        .collect();
    if addrs.is_empty() {
        bail!("the listen address {listen} resolves to no address");
    }
    Ok(addrs)
}

/// Whether `ip` is reachable from this machine only. An IPv4 address mapped into IPv6
/// (`::ffff:127.0.0.1`) counts as the IPv4 address it is.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Whether any of `addrs` can be reached from other machines.
pub fn exposed(addrs: &[SocketAddr]) -> bool {
    addrs.iter().any(|a| !is_loopback(a.ip()))
}

/// Refuses to serve on an address other machines can reach while no token is configured,
/// unless `insecure_no_auth`.
pub fn check(
    listen: &str,
    addrs: &[SocketAddr],
    tokens_configured: bool,
    insecure_no_auth: bool,
) -> anyhow::Result<()> {
    if exposed(addrs) && !tokens_configured && !insecure_no_auth {
        bail!(
            "refusing to serve on {listen}: it is not a loopback address, and no API token is \
             configured, so anyone who can reach it could ingest, read and drop data. Create a \
             token first (`freshet token create --role admin`, or set FRESHET_TOKENS), listen \
             on 127.0.0.1, or pass --insecure-no-auth if an open API is what you mean"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_127_8_and_ipv6_one_including_mapped() {
        for ip in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "0.0.0.0",
            "::",
            "10.0.0.1",
            "192.168.1.2",
            "::ffff:10.0.0.1",
            "fe80::1",
        ] {
            assert!(!is_loopback(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn a_non_loopback_address_needs_a_token_or_insecure_no_auth() {
        let any = resolve("0.0.0.0:0").unwrap();
        let e = check("0.0.0.0:0", &any, false, false).expect_err("refused");
        let message = e.to_string();
        assert!(message.contains("freshet token create"), "{message}");
        assert!(message.contains("--insecure-no-auth"), "{message}");
        assert!(check("0.0.0.0:0", &any, true, false).is_ok());
        assert!(check("0.0.0.0:0", &any, false, true).is_ok());
        let local = resolve("localhost:0").unwrap();
        assert!(!exposed(&local), "{local:?}");
        assert!(check("localhost:0", &local, false, false).is_ok());
        assert!(check("[::1]:0", &resolve("[::1]:0").unwrap(), false, false).is_ok());
    }
}
