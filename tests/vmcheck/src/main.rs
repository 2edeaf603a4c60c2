//! A unikernel for the VM tests. `--check=NAME` picks what it does:
//!
//! * `blk-write`: writes a pattern over the first 1 MiB of the disk, flushes.
//! * `blk-read`: reads it back and checks it.
//! * `entropy`: prints 32 bytes from the entropy device in hex.
//! * `console`: writes a line to the console device.
//! * `panic`, `write-text`, `stack-overflow`: deliberate failures.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec;
use morgana::log::info;
use morgana::{ArgError, Args, Block, Console, Entropy, Env};

struct Config {
    check: String,
}

fn config(args: &mut Args) -> Result<Config, ArgError> {
    let check = args.value("check", "what to check")?.ok_or(ArgError::MissingValue("check"))?;
    Ok(Config { check })
}

const LEN: usize = 1 << 20;

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 9) ^ 0xa5) as u8
}

async fn serve(mut env: Env, cfg: Config) -> morgana::Result {
    match cfg.check.as_str() {
        "blk-write" | "blk-read" => {
            let disk = env.block.as_mut().ok_or("no block device")?;
            let info = disk.info();
            info!("disk: {} sectors of {} bytes", info.sectors, info.sector_size);
            if cfg.check == "blk-write" {
                let data: alloc::vec::Vec<u8> = (0..LEN).map(pattern).collect();
                disk.write(0, &data).await?;
                disk.flush().await?;
                info!("blk: wrote and flushed {LEN} bytes");
            } else {
                let mut data = vec![0u8; LEN];
                disk.read(0, &mut data).await?;
                if let Some(i) = (0..LEN).find(|&i| data[i] != pattern(i)) {
                    return Err(alloc::format!("blk: byte {i} differs").into());
                }
                info!("blk: pattern intact ({LEN} bytes)");
            }
        }
        "entropy" => {
            let mut b = [0u8; 32];
            env.entropy.fill(&mut b)?;
            let hex: String = b.iter().map(|x| alloc::format!("{x:02x}")).collect();
            info!("entropy: {hex}");
        }
        "console" => {
            env.console.write(b"hello from the console device\n")?;
        }
        "panic" => panic!("deliberate panic"),
        #[cfg(target_os = "none")]
        "write-text" => morgana::backend::fault::write_to_text(),
        #[cfg(target_os = "none")]
        "stack-overflow" => morgana::backend::fault::overflow_stack(),
        other => return Err(alloc::format!("unknown check '{other}'").into()),
    }
    Ok(())
}

morgana::main!(config, serve);
