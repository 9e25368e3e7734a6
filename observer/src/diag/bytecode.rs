//! inet_diag bytecode: a tiny filter program the kernel runs on each socket
//! during a dump, so that only matching sockets are sent to us.
//!
//! The program is attached to the request as the `INET_DIAG_REQ_BYTECODE`
//! attribute. It is a list of 4-byte ops (`struct inet_diag_bc_op`: code,
//! yes, no), some followed by operands. The kernel (inet_diag_bc_run in
//! net/ipv4/inet_diag.c) starts at the first op and, for each one, jumps
//! forward `yes` bytes if the test holds and `no` bytes if not. Landing
//! exactly on the end accepts the socket; jumping past it rejects it.
//! inet_diag_bc_audit checks every jump before the program runs.
//!
//! `ss` compiles its filter language (`sport = :6666 or dport = :6666`) to
//! the same ops; here we only need "local or remote port is P".

use crate::layout::inet_diag_bc_op as op;

/// Op codes (`enum { INET_DIAG_BC_NOP, ... }`, inet_diag.h).
pub const INET_DIAG_BC_NOP: u8 = 0;
pub const INET_DIAG_BC_JMP: u8 = 1;
pub const INET_DIAG_BC_S_GE: u8 = 2;
pub const INET_DIAG_BC_S_LE: u8 = 3;
pub const INET_DIAG_BC_D_GE: u8 = 4;
pub const INET_DIAG_BC_D_LE: u8 = 5;
pub const INET_DIAG_BC_AUTO: u8 = 6;
pub const INET_DIAG_BC_S_COND: u8 = 7;
pub const INET_DIAG_BC_D_COND: u8 = 8;
pub const INET_DIAG_BC_DEV_COND: u8 = 9;
pub const INET_DIAG_BC_MARK_COND: u8 = 10;
/// Source (local) port equals the operand (newer than the seed: its era
/// had only the GE/LE pairs).
pub const INET_DIAG_BC_S_EQ: u8 = 11;
/// Destination (remote) port equals the operand.
pub const INET_DIAG_BC_D_EQ: u8 = 12;
pub const INET_DIAG_BC_CGROUP_COND: u8 = 13;

pub fn op_name(code: u8) -> &'static str {
    match code {
        INET_DIAG_BC_NOP => "INET_DIAG_BC_NOP",
        INET_DIAG_BC_JMP => "INET_DIAG_BC_JMP",
        INET_DIAG_BC_S_GE => "INET_DIAG_BC_S_GE",
        INET_DIAG_BC_S_LE => "INET_DIAG_BC_S_LE",
        INET_DIAG_BC_D_GE => "INET_DIAG_BC_D_GE",
        INET_DIAG_BC_D_LE => "INET_DIAG_BC_D_LE",
        INET_DIAG_BC_AUTO => "INET_DIAG_BC_AUTO",
        INET_DIAG_BC_S_COND => "INET_DIAG_BC_S_COND",
        INET_DIAG_BC_D_COND => "INET_DIAG_BC_D_COND",
        INET_DIAG_BC_DEV_COND => "INET_DIAG_BC_DEV_COND",
        INET_DIAG_BC_MARK_COND => "INET_DIAG_BC_MARK_COND",
        INET_DIAG_BC_S_EQ => "INET_DIAG_BC_S_EQ",
        INET_DIAG_BC_D_EQ => "INET_DIAG_BC_D_EQ",
        INET_DIAG_BC_CGROUP_COND => "INET_DIAG_BC_CGROUP_COND",
        _ => "?",
    }
}

/// Does the op carry a port operand (a second 4-byte op whose `no` field
/// holds the port, in host byte order)?
fn has_port_operand(code: u8) -> bool {
    matches!(
        code,
        INET_DIAG_BC_S_GE
            | INET_DIAG_BC_S_LE
            | INET_DIAG_BC_D_GE
            | INET_DIAG_BC_D_LE
            | INET_DIAG_BC_S_EQ
            | INET_DIAG_BC_D_EQ
    )
}

fn push_op(program: &mut Vec<u8>, code: u8, yes: u8, no: u16) {
    let mut bytes = [0u8; 4];
    op::CODE.put(&mut bytes, code.into());
    op::YES.put(&mut bytes, yes.into());
    op::NO.put(&mut bytes, no.into());
    program.extend_from_slice(&bytes);
}

/// Compile "local port == P or remote port == P", the way ss compiles an
/// `or` (ssfilter_bytecode in iproute2's misc/ss.c).
///
/// The kernel's audit (inet_diag_bc_audit) only accepts a `no` jump that
/// lands where a chain of `yes` jumps from the start also lands, so a test
/// that succeeds must fall through to the next op, and an unconditional
/// JMP carries the "accept" over the second test:
///
/// ```text
/// offset 0:  S_EQ  yes=8 (fall through)      no=12 (to the second test)
/// offset 4:        operand: port P
/// offset 8:  JMP   yes=4 (never taken)       no=12 (to the end: accept)
/// offset 12: D_EQ  yes=8 (to the end: accept) no=12 (past the end: reject)
/// offset 16:       operand: port P
/// ```
pub fn port_filter(port: u16) -> Vec<u8> {
    let mut program = Vec::with_capacity(20);
    push_op(&mut program, INET_DIAG_BC_S_EQ, 8, 12);
    push_op(&mut program, 0, 0, port);
    push_op(&mut program, INET_DIAG_BC_JMP, 4, 12);
    push_op(&mut program, INET_DIAG_BC_D_EQ, 8, 12);
    push_op(&mut program, 0, 0, port);
    program
}

/// One decoded instruction, for `observer explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Byte offset in the program.
    pub offset: usize,
    pub code: u8,
    pub yes: u8,
    pub no: u16,
    /// The port operand, for port tests.
    pub port: Option<u16>,
    /// Total size with operands.
    pub len: usize,
}

impl Instruction {
    /// "if local port == 6666 goto 16 (accept) else goto 8".
    pub fn describe(&self, program_len: usize) -> String {
        let target = |jump: usize| {
            let to = self.offset + jump;
            if to == program_len {
                format!("{to} (the end: accept)")
            } else if to > program_len {
                format!("{to} (past the end: reject)")
            } else {
                to.to_string()
            }
        };
        let test = match (self.code, self.port) {
            (INET_DIAG_BC_S_EQ, Some(p)) => format!("local port == {p}"),
            (INET_DIAG_BC_D_EQ, Some(p)) => format!("remote port == {p}"),
            (INET_DIAG_BC_S_GE, Some(p)) => format!("local port >= {p}"),
            (INET_DIAG_BC_S_LE, Some(p)) => format!("local port <= {p}"),
            (INET_DIAG_BC_D_GE, Some(p)) => format!("remote port >= {p}"),
            (INET_DIAG_BC_D_LE, Some(p)) => format!("remote port <= {p}"),
            (INET_DIAG_BC_NOP, _) => "nothing (true)".to_string(),
            (INET_DIAG_BC_JMP, _) => "jump (false)".to_string(),
            (code, _) => op_name(code).to_string(),
        };
        format!(
            "if {test} goto {} else goto {}",
            target(self.yes as usize),
            target(self.no as usize)
        )
    }
}

/// Split a program into instructions (as the kernel's audit walks it).
pub fn decode(program: &[u8]) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset + 4 <= program.len() {
        let bytes = &program[offset..];
        let code = op::CODE.u8(bytes);
        let port_operand = has_port_operand(code) && offset + 8 <= program.len();
        let port = port_operand.then(|| op::NO.u16(&bytes[4..]));
        let len = if port_operand { 8 } else { 4 };
        out.push(Instruction {
            offset,
            code,
            yes: op::YES.u8(bytes),
            no: op::NO.u16(bytes),
            port,
            len,
        });
        offset += len;
    }
    out
}

/// Run a program on (local port, remote port), as inet_diag_bc_run does
/// for these ops: a model to test the compiled program against.
pub fn run(program: &[u8], sport: u16, dport: u16) -> bool {
    let mut pc: isize = 0;
    let mut len = program.len() as isize;
    while len > 0 {
        let Some(ins) = decode(&program[pc as usize..]).into_iter().next() else {
            return false;
        };
        let yes = match (ins.code, ins.port) {
            (INET_DIAG_BC_S_EQ, Some(p)) => sport == p,
            (INET_DIAG_BC_D_EQ, Some(p)) => dport == p,
            (INET_DIAG_BC_S_GE, Some(p)) => sport >= p,
            (INET_DIAG_BC_S_LE, Some(p)) => sport <= p,
            (INET_DIAG_BC_D_GE, Some(p)) => dport >= p,
            (INET_DIAG_BC_D_LE, Some(p)) => dport <= p,
            (INET_DIAG_BC_JMP, _) => false,
            _ => true,
        };
        let jump = if yes {
            ins.yes as isize
        } else {
            ins.no as isize
        };
        len -= jump;
        pc += jump;
    }
    len == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The compiled filter, byte by byte (x86-64, little-endian host).
    #[test]
    fn port_filter_bytes_are_as_documented() {
        #[rustfmt::skip]
        let expected: [u8; 20] = [
            11, 8, 12, 0,        // S_EQ, yes=8 (fall through), no=12 (second test)
            0, 0, 0x0a, 0x1a,    // operand: no = 6666 (0x1a0a), host order
            1, 4, 12, 0,         // JMP, yes=4 (never), no=12 (to the end: accept)
            12, 8, 12, 0,        // D_EQ, yes=8 (accept), no=12 (reject)
            0, 0, 0x0a, 0x1a,    // operand: 6666
        ];
        assert_eq!(port_filter(6666), expected);
        let decoded = decode(&expected);
        assert_eq!(decoded.len(), 3);
        assert_eq!(decoded[0].port, Some(6666));
        assert_eq!(
            decoded[0].describe(20),
            "if local port == 6666 goto 8 else goto 12"
        );
        assert_eq!(
            decoded[1].describe(20),
            "if jump (false) goto 12 else goto 20 (the end: accept)"
        );
        assert_eq!(
            decoded[2].describe(20),
            "if remote port == 6666 goto 20 (the end: accept) else goto 24 (past the end: reject)"
        );
    }

    #[test]
    fn port_filter_accepts_either_end_and_rejects_the_rest() {
        let program = port_filter(6666);
        assert!(run(&program, 6666, 40000));
        assert!(run(&program, 40000, 6666));
        assert!(!run(&program, 40000, 40001));
    }
}
