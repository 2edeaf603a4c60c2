//! Session resumption with a real client: `openssl s_client -sess_out`
//! saves the session of a full handshake, `-sess_in` offers it again and
//! the server must resume it ("Reused"). TLS 1.3 tickets (stateless with
//! ring's ticketer, else an entry of the server's bounded session cache),
//! TLS 1.2 tickets and TLS 1.2 session IDs (`-no_ticket`).

use super::*;

/// A request that makes the server answer and close, so s_client reads
/// everything the server sent (TLS 1.3 tickets come after the handshake).
const REQUEST: &str = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

/// s_client with `REQUEST` on its stdin, until the server closes.
fn s_client_request(port: u16, args: &[&str]) -> Result<String> {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", "localhost", "-ign_eof"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().ok_or("stdin")?.write_all(REQUEST.as_bytes())?;
    let out = child.wait_with_output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// The "New, TLSv1.3, Cipher is ..." or "Reused, ..." line.
fn session_line(out: &str) -> &str {
    out.lines().find(|l| l.starts_with("New, ") || l.starts_with("Reused, ")).unwrap_or("")
}

/// A full handshake saving its session to `file`, then one offering it:
/// checks the first is new and the second resumed, both at `version`
/// (e.g. "TLSv1.3"), and returns the first handshake's output.
fn resume(port: u16, file: &str, flags: &[&str], version: &str) -> Result<String> {
    let first = s_client_request(port, &[flags, &["-sess_out", file]].concat())?;
    check(session_line(&first).starts_with(&format!("New, {version}")), "a full handshake", &first)?;
    check(first.contains("HTTP/1.1 200"), "the page over the first connection", &first)?;
    let second = s_client_request(port, &[flags, &["-sess_in", file]].concat())?;
    check(session_line(&second).starts_with(&format!("Reused, {version}")), "the session resumed", &second)?;
    check(second.contains("HTTP/1.1 200"), "the page over the resumed connection", &second)?;
    Ok(first)
}

/// The hosted server resumes TLS 1.3 and TLS 1.2 sessions; a session the
/// server cannot resume (another server's) gets a full handshake.
pub(super) fn hosted_resumption() -> Result {
    let pki = Pki::new("resume")?;
    let w = start_web(Some(&pki), &[])?;
    let ca = pki.path("ca.pem");
    let file = |name: &str| pki.path(name);
    let t13 = resume(w.https, &file("t13.sess"), &["-tls1_3", "-CAfile", &ca], "TLSv1.3")?;
    // ring: stateless tickets from rustls's ticketer (12 h); without a
    // ticketer (rustcrypto) the ticket names a cache entry (rustls: 24 h).
    let hint = if crypto() == "ring" { "lifetime hint: 43200" } else { "lifetime hint: 86400" };
    check(t13.contains(hint), &format!("TLS 1.3 ticket ({} crypto): {hint}", crypto()), &t13)?;
    resume(w.https, &file("t12.sess"), &["-tls1_2", "-CAfile", &ca], "TLSv1.2")?;
    // A TLS 1.2 session ID from the server's session cache.
    let t12_id = resume(w.https, &file("t12id.sess"), &["-tls1_2", "-no_ticket", "-CAfile", &ca], "TLSv1.2")?;
    check(!t12_id.contains("TLS session ticket:"), "no ticket with -no_ticket", &t12_id)?;
    // Another server (its own ticket keys and cache) cannot resume these:
    // a full handshake, not an error.
    let other = start_web(Some(&pki), &[])?;
    for (name, flags) in [("t13.sess", "-tls1_3"), ("t12id.sess", "-tls1_2")] {
        let out = s_client_request(other.https, &[flags, "-CAfile", &ca, "-sess_in", &file(name)])?;
        check(
            session_line(&out).starts_with("New, ") && out.contains("Verify return code: 0 (ok)"),
            &format!("{name} offered to another server: a full handshake"),
            &out,
        )?;
    }
    Ok(())
}

/// The VM image resumes sessions too (from its session cache).
pub(super) fn vm_resumption() -> Result {
    let vm = super::vm::start_vm()?;
    let dir = std::env::temp_dir().join(format!("morgana-vm-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = |name: &str| dir.join(name).display().to_string();
    // The image's development certificate is not verified here.
    let t13 = resume(vm.https, &file("t13.sess"), &["-tls1_3"], "TLSv1.3")?;
    check(t13.contains("lifetime hint: 86400"), "a session-cache ticket", &t13)?;
    resume(vm.https, &file("t12.sess"), &["-tls1_2", "-no_ticket"], "TLSv1.2")?;
    Ok(())
}
