//! `cargo xtask libvirt` and `cargo xtask xl` as a user runs them, on a
//! released image (`--elf`): every option reaches the description, and
//! options that contradict each other are refused with a message.

use std::process::Command;

fn xtask(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).args(args).output().expect("run xtask");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Any existing file stands for the released image and the archive.
fn file(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name).display().to_string()
}

#[test]
fn xl_takes_every_option() {
    let (elf, tar) = (file("Cargo.toml"), file("src/main.rs"));
    let args = ["xl", "--elf", &elf, "--content", &tar, "--bridge", "br7", "--name", "ns1", "--memory", "48"];
    let (ok, out, err) = xtask(&[&args[..], &["--", "--ipv4=10.0.0.2/24", "--log=debug"]].concat());
    assert!(ok, "{err}");
    let want = format!(
        "type = \"pvh\"\nname = \"ns1\"\nkernel = \"{elf}\"\nmemory = 48\ncmdline = \"--ipv4=10.0.0.2/24 --log=debug\"\n\
         on_crash = \"destroy\"\nvif = ['bridge=br7']\ndisk = ['format=raw,vdev=xvda,access=ro,target={tar}']\n"
    );
    assert_eq!(out, want);
    // Without options: named after the image, 32 MiB, xenbr0, no disk.
    let (ok, out, _) = xtask(&["xl", "--elf", &elf]);
    assert!(ok && out.contains("name = \"Cargo\"") && out.contains("memory = 32") && out.contains("bridge=xenbr0"));
    assert!(!out.contains("disk ="));
}

#[test]
fn libvirt_takes_every_option() {
    let (elf, tar) = (file("Cargo.toml"), file("src/main.rs"));
    let args = ["libvirt", "--elf", &elf, "--kernel", "--content", &tar, "--bridge", "br7", "--name", "ns1"];
    let (ok, out, err) = xtask(&[&args[..], &["--memory", "40", "--tcg", "--", "--ipv4=10.0.0.2/24"]].concat());
    assert!(ok, "{err}");
    for want in [
        "<domain type='qemu'>",
        "<name>ns1</name>",
        "<memory unit='MiB'>40</memory>",
        &format!("<kernel>{elf}</kernel>"),
        "<cmdline>--ipv4=10.0.0.2/24</cmdline>",
        &format!("<source file='{tar}'/>"),
        "<readonly/>",
        "<source bridge='br7'/>",
    ] {
        assert!(out.contains(want), "no {want} in\n{out}");
    }
    // A disk with UEFI: 128 MiB unless told, no command line, KVM.
    let (ok, out, err) = xtask(&["libvirt", "--elf", &elf, "--disk", &tar, "--uefi"]);
    assert!(ok, "{err}");
    assert!(out.contains("<memory unit='MiB'>128</memory>") && out.contains("<os firmware='efi'>"));
    assert!(out.starts_with("<domain type='kvm'>") && !out.contains("<kernel>"));
}

#[test]
fn contradictions_are_refused() {
    let (elf, tar) = (file("Cargo.toml"), file("src/main.rs"));
    let cases: [(Vec<&str>, &str); 10] = [
        (vec!["libvirt", "--elf", &elf, "--kernel", "--disk", &tar], "exclude each other"),
        (vec!["libvirt", "--elf", &elf, "--uefi"], "--uefi needs --disk"),
        (vec!["libvirt", "--elf", &elf, "--disk", &tar, "--uefi", "--memory", "64"], "--memory 128 or more"),
        (vec!["libvirt", "--elf", &elf, "--disk", &tar, "--", "--log=debug"], "GRUB entry"),
        (vec!["libvirt", "--elf", &elf, "--disk", &tar, "--content", &tar], "--content is for --kernel"),
        (vec!["libvirt", "--elf", &elf, "--memory", "lots"], "bad --memory"),
        (vec!["libvirt", "--elf", "/no/such/image"], "/no/such/image"),
        (vec!["xl", "--elf", &elf, "--disk", &tar], "unknown option --disk"),
        (vec!["xl", "--elf", &elf, "--", "--name=\"x\""], "quotes"),
        // A comma would start another key in xl's vif or disk spec.
        (vec!["xl", "--elf", &elf, "--bridge", "br0,script=/tmp/x"], "no quotes, newlines, commas"),
    ];
    for (args, says) in cases {
        let (ok, out, err) = xtask(&args);
        assert!(!ok && out.is_empty() && err.contains(says), "{args:?}: {err}");
    }
}
