//! `echo`: every byte comes back, whatever the bytes (UNP 5.3-5.5, 6.7).

use crate::echo::Client;
use crate::interrupt::TempFile;
use crate::random_bytes;
use crate::spawn::Input;
use crate::story::{Failure, PATIENCE, Story};

/// Lines, a 1 MiB line, binary with NUL bytes, no final newline, in both
/// client modes; and a file given as stdin (batch mode).
pub fn byte_for_byte(story: &mut Story) -> Result<(), Failure> {
    let server = story.server(&[])?;
    let mut one_mib_line = vec![b'x'; 1 << 20];
    one_mib_line.push(b'\n');
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("three lines", b"hello\nworld\nthe end\n".to_vec()),
        ("a 1 MiB line", one_mib_line),
        ("binary with NUL bytes", random_bytes(42, 256 * 1024)),
        ("no final newline", b"no newline at the end".to_vec()),
    ];
    for mode in ["lockstep", "poll"] {
        for (what, data) in &inputs {
            let out = Client::run(server.addr, &["--mode", mode], data, PATIENCE)?;
            story.check(
                "client",
                &format!("{mode}: {what} ({} B) came back byte for byte", data.len()),
                out.status.success() && &out.stdout == data,
                || describe_mismatch(data, &out.stdout, &out.stderr),
            )?;
        }
    }
    let data = random_bytes(7, 2 << 20);
    // Named by process and thread: scenarios run side by side in one test
    // process, and another's std::fs::write truncates the file under a
    // client still reading it.
    let path = std::env::temp_dir().join(format!(
        "echo-lab-batch-{}-{:?}.bin",
        std::process::id(),
        std::thread::current().id()
    ));
    let file = TempFile::new(path);
    std::fs::write(&file.0, &data).map_err(anyhow::Error::from)?;
    for mode in ["lockstep", "poll"] {
        let client = story.client(server.addr, &["--mode", mode], Input::File(&file.0))?;
        let out = client.finish(PATIENCE)?;
        story.check(
            "client",
            &format!(
                "{mode}: batch input from a file ({} B), nothing lost",
                data.len()
            ),
            out.status.success() && out.stdout == data,
            || describe_mismatch(&data, &out.stdout, &out.stderr),
        )?;
    }
    server.stop()?;
    Ok(())
}

fn describe_mismatch(sent: &[u8], got: &[u8], stderr: &str) -> String {
    let first_diff = sent.iter().zip(got).position(|(a, b)| a != b);
    format!(
        "sent {} bytes, got {}; first difference at {:?}\nclient stderr:\n{stderr}",
        sent.len(),
        got.len(),
        first_diff
    )
}
